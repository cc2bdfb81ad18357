"""Two-factor sign-in: an authenticator app (TOTP) and single-use recovery codes.

One flow for every client. A password that is right for an account with
two-factor on does not sign in by itself: it earns an `mfa_token`, a short-
lived signed ticket naming the account, and the second factor is checked
against that ticket (`auth/token/mfa/` for the API, the web login's code
page). Codes:

- TOTP (RFC 6238, 30 s steps, 6 digits) through pyotp. One step of clock
  skew either way is accepted; a code whose step is not after the last
  accepted one is refused, so a code seen over a shoulder cannot be replayed.
- Ten recovery codes, shown once, kept as keyed hashes; each works once.

Only wrong codes spend the per-account budget (settings.AUTH_RATE_LIMITS["mfa"]).
The clock is this module's `time.time`, which tests replace.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import pyotp
import segno
from django.conf import settings
from django.core import signing
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import salted_hmac

from accounts import security_events
from accounts.models import ModerationAction, Passkey, RecoveryCode, SecurityLogEntry, TotpDevice, User
from accounts.services import moderation_record, user_sign_out_everywhere
from core import ratelimit
from core.errors import Conflict, Invalid, ServiceError

TOTP_STEP_SECONDS = 30
TOTP_DIGITS = 6
# Steps either side of now that still count: a phone whose clock is half a minute off.
TOTP_SKEW_STEPS = 1
RECOVERY_CODE_COUNT = 10
# No 0/o, 1/l/i: codes are read off paper.
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
MFA_TOKEN_SALT = "accounts.mfa.token"  # noqa: S105 (a signing salt, not a secret)

METHOD_TOTP = "totp"
METHOD_RECOVERY = "recovery"
METHOD_WEBAUTHN = "webauthn"


class CodeRefused(ServiceError):
    """A second-factor code that is wrong, already used or expired (401)."""

    code = "invalid_code"
    http_status = 401


class MfaTokenRefused(ServiceError):
    """An `mfa_token` that is forged, expired or no longer valid for its account (401)."""

    code = "invalid_mfa_token"
    http_status = 401


def _now() -> float:
    return time.time()


def _has_totp(user: User) -> bool:
    return TotpDevice.objects.filter(user=user, confirmed_at__isnull=False).exists()


def mfa_enabled(user: User) -> bool:
    """Whether signing in as `user` with a password needs a second factor: an authenticator app or a passkey."""
    return _has_totp(user) or Passkey.objects.filter(user=user).exists()


def mfa_methods(user: User) -> list[str]:
    """The second factors `user` can give, in the order the login offers them."""
    methods = [METHOD_TOTP] if _has_totp(user) else []
    if RecoveryCode.objects.filter(user=user, used_at__isnull=True).exists():
        methods.append(METHOD_RECOVERY)
    if Passkey.objects.filter(user=user).exists():
        methods.append(METHOD_WEBAUTHN)
    return methods


# --- Enrolment --------------------------------------------------------------------------


@dataclass(frozen=True)
class Enrolment:
    secret: str
    otpauth_url: str

    def qr_svg(self) -> str:
        """The otpauth URL as an inline SVG QR code, made here: no outside service sees the secret."""
        return str(segno.make(self.otpauth_url, error="m").svg_inline(scale=5, border=2, dark="#000", light="#fff"))


def _otpauth_url(user: User, secret: str) -> str:
    issuer = settings.MFA_ISSUER
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP_SECONDS).provisioning_uri(
        name=user.username, issuer_name=issuer
    )


@transaction.atomic
def totp_begin(*, user: User) -> Enrolment:
    """Start (or restart) enrolling an authenticator: a new secret, not active until a code confirms it."""
    device = TotpDevice.objects.select_for_update().filter(user=user).first()
    if device is not None and device.confirmed_at is not None:
        raise Conflict("Two-factor sign-in is already on. Turn it off first to set up another authenticator.")
    secret = pyotp.random_base32()
    TotpDevice.objects.update_or_create(user=user, defaults={"secret": secret, "confirmed_at": None, "last_step": 0})
    return Enrolment(secret=secret, otpauth_url=_otpauth_url(user, secret))


def totp_pending(*, user: User) -> Enrolment | None:
    """The enrolment begun and not yet confirmed, to show its QR code again."""
    device = TotpDevice.objects.filter(user=user, confirmed_at__isnull=True).first()
    return None if device is None else Enrolment(secret=device.secret, otpauth_url=_otpauth_url(user, device.secret))


def _matching_step(secret: str, code: str, *, after: int) -> int | None:
    """Return the time step `code` belongs to (now, or one step either side), if it is after `after`."""
    code = "".join(code.split())
    if len(code) != TOTP_DIGITS or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP_SECONDS)
    current = int(_now() // TOTP_STEP_SECONDS)
    for step in range(current - TOTP_SKEW_STEPS, current + TOTP_SKEW_STEPS + 1):
        if step > after and hmac.compare_digest(totp.at(step * TOTP_STEP_SECONDS), code):
            return step
    return None


def _consume_totp(device: TotpDevice, code: str) -> bool:
    """Accept `code` for `device` once: a conditional update records its step, so of two racing uses one wins."""
    step = _matching_step(device.secret, code, after=device.last_step)
    if step is None:
        return False
    won = TotpDevice.objects.filter(pk=device.pk, last_step__lt=step).update(last_step=step)
    if won:
        device.last_step = step
    return bool(won)


@transaction.atomic
def totp_confirm(*, user: User, code: object, request: HttpRequest | None = None) -> list[str]:
    """Turn two-factor on with the first code from the new authenticator; return the ten recovery codes.

    The codes are shown this once: only their hashes are kept.
    """
    _check_budget(request, user)
    device = TotpDevice.objects.select_for_update().filter(user=user).first()
    if device is None:
        raise Invalid("Start setting up an authenticator first.")
    if device.confirmed_at is not None:
        raise Conflict("Two-factor sign-in is already on.")
    if not isinstance(code, str) or not _consume_totp(device, code):
        _count_failure(request, user)
        raise Invalid({"code": "That code is not right. Check the time on your phone and try the newest code."})
    device.confirmed_at = timezone.now()
    device.save(update_fields=["confirmed_at"])
    codes = recovery_codes_replace(user)
    security_events.record(user=user, kind=SecurityLogEntry.Kind.TOTP_ENABLED, request=request)
    return codes


@transaction.atomic
def mfa_disable(*, user: User, code: object, request: HttpRequest | None = None) -> None:
    """Remove the authenticator app; it takes a current code (authenticator or recovery), not just a signed-in session.

    Without passkeys left, that turns two-factor off and the recovery codes go too.
    """
    _check_budget(request, user)
    if not _has_totp(user):
        raise Conflict("Two-factor sign-in with an authenticator app is not on.")
    _verify_or_refuse(user=user, code=code, request=request)
    TotpDevice.objects.filter(user=user).delete()
    if not Passkey.objects.filter(user=user).exists():
        RecoveryCode.objects.filter(user=user).delete()
    security_events.record(user=user, kind=SecurityLogEntry.Kind.TOTP_DISABLED, request=request)


@transaction.atomic
def recovery_codes_regenerate(*, user: User, code: object, request: HttpRequest | None = None) -> list[str]:
    """Replace every recovery code with ten new ones (after a current code); the old ones stop working."""
    _check_budget(request, user)
    if not mfa_enabled(user):
        raise Conflict("Two-factor sign-in is not on.")
    _verify_or_refuse(user=user, code=code, request=request)
    codes = recovery_codes_replace(user)
    security_events.record(user=user, kind=SecurityLogEntry.Kind.RECOVERY_REGENERATED, request=request)
    return codes


@transaction.atomic
def mfa_reset(*, user: User, actor: User, reason: str, via: str = "admin") -> None:
    """Staff turn off someone's two-factor (a lost phone and lost codes); logged with the reason.

    Every sign-in of the account's ends too: whoever holds the lost phone keeps no way in.
    """
    if not reason.strip():
        raise Invalid({"reason": "Give a reason: it goes into the moderation log."})
    if actor.pk == user.pk:
        # Without a code: that would make the code asked for to turn it off worthless.
        raise Invalid("Turn off your own two-factor sign-in in your profile, with a code.")
    if not TotpDevice.objects.filter(user=user).exists() and not Passkey.objects.filter(user=user).exists():
        raise Invalid(f"{user.username} has no two-factor sign-in.")
    TotpDevice.objects.filter(user=user).delete()
    Passkey.objects.filter(user=user).delete()
    RecoveryCode.objects.filter(user=user).delete()
    moderation_record(
        actor=actor, action=ModerationAction.Kind.USER_MFA_RESET, target_user=user, reason=reason, via=via
    )
    security_events.record(user=user, kind=SecurityLogEntry.Kind.TOTP_RESET, via=via)
    user_sign_out_everywhere(user=user)


def recovery_codes_left(user: User) -> int:
    return RecoveryCode.objects.filter(user=user, used_at__isnull=True).count()


# --- Recovery codes ---------------------------------------------------------------------


def recovery_code_normalise(code: str) -> str:
    """What a recovery code is compared as: lower case, no spaces or dashes."""
    return "".join(char for char in code.lower() if char not in " -\t")


def recovery_code_hash(code: str) -> str:
    # Codes carry about 49 random bits: a keyed hash is enough, and lets the lookup use an index.
    return salted_hmac("accounts.mfa.recovery", recovery_code_normalise(code), algorithm="sha256").hexdigest()


def _recovery_code_new() -> str:
    raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"


def recovery_codes_replace(user: User) -> list[str]:
    RecoveryCode.objects.filter(user=user).delete()
    codes = [_recovery_code_new() for _ in range(RECOVERY_CODE_COUNT)]
    RecoveryCode.objects.bulk_create([RecoveryCode(user=user, code_hash=recovery_code_hash(code)) for code in codes])
    return codes


def _consume_recovery(user: User, code: str) -> bool:
    if not 8 <= len(recovery_code_normalise(code)) <= 12:
        return False
    return bool(
        RecoveryCode.objects.filter(user=user, code_hash=recovery_code_hash(code), used_at__isnull=True).update(
            used_at=timezone.now()
        )
    )


# --- Checking a second factor -----------------------------------------------------------


def _budget_key(user: User) -> str:
    return f"user:{user.pk}"


def _check_budget(request: HttpRequest | None, user: User) -> None:
    if request is not None:
        ratelimit.failures_check(request, action="mfa", username=_budget_key(user))


def _count_failure(request: HttpRequest | None, user: User) -> None:
    if request is not None:
        ratelimit.failure_count(request, action="mfa", username=_budget_key(user))


def _verify_or_refuse(*, user: User, code: object, request: HttpRequest | None) -> str:
    method = verify(user=user, code=code)
    if method is None:
        _count_failure(request, user)
        raise CodeRefused({"code": "That code is wrong, already used or expired."})
    if method == METHOD_RECOVERY:
        security_events.record(user=user, kind=SecurityLogEntry.Kind.RECOVERY_USED, request=request)
    return method


def verify(*, user: User, code: object) -> str | None:
    """Check a second-factor code: return the method it was ("totp", "recovery"), or None if it is refused.

    Each code works once: a TOTP code's step is recorded, a recovery code is marked used.
    """
    if not isinstance(code, str) or len(code) > 64:
        return None
    device = TotpDevice.objects.filter(user=user, confirmed_at__isnull=False).first()
    if device is not None and _consume_totp(device, code):
        return METHOD_TOTP
    if _consume_recovery(user, code):
        return METHOD_RECOVERY
    return None


# --- The ticket between the password and the second factor -------------------------------


def mfa_token_issue(user: User) -> str:
    """Sign a short-lived ticket saying `user` gave the right password (settings.MFA_TOKEN_SECONDS)."""
    payload = {"u": user.pk, "v": user.token_version, "t": int(_now()), "n": secrets.token_hex(8)}
    return signing.dumps(payload, salt=MFA_TOKEN_SALT, compress=False)


def mfa_token_user(token: object) -> User:
    """Return the active account an unexpired, genuine `mfa_token` names, or raise MfaTokenRefused.

    A ticket from before the account's last sign-out everywhere or password change is refused too.
    """
    refused = MfaTokenRefused({"mfa_token": "This sign-in has expired or is not valid; sign in again."})
    if not isinstance(token, str) or len(token) > 512 or not token.isascii():
        raise refused
    try:
        payload: dict[str, Any] = signing.loads(token, salt=MFA_TOKEN_SALT)
    except signing.BadSignature:
        raise refused from None
    issued = payload.get("t")
    if not isinstance(issued, int) or not 0 <= _now() - issued <= settings.MFA_TOKEN_SECONDS:
        raise refused
    user_id = payload.get("u")
    if not isinstance(user_id, int):
        raise refused
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None or user.token_version != payload.get("v"):
        raise refused
    return user


def second_factor_check(*, user: User, code: object, request: HttpRequest | None) -> str:
    """The second step of a sign-in: check the budget, then the code; return the method or raise.

    Raises RateLimited past the account's budget of wrong codes and
    CodeRefused (401) for a wrong, used or expired code.
    """
    _check_budget(request, user)
    try:
        with transaction.atomic():
            return _verify_or_refuse(user=user, code=code, request=request)
    except CodeRefused:
        # After the rollback, so the owner sees it in the profile.
        security_events.record(user=user, kind=SecurityLogEntry.Kind.MFA_FAILED, request=request)
        raise
