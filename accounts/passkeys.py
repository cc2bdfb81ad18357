"""Passkeys (WebAuthn, through py_webauthn): several per account, named; a second factor or a sign-in of their own.

Every ceremony is two requests: options (a fresh challenge) and verify (the
authenticator's answer). The challenge is kept in the cache for
`CHALLENGE_SECONDS`, under its own value, and taken out by the verify that
uses it, so each works once, for the account (or the password-less sign-in)
it was made for. py_webauthn checks the rest: the challenge echoed in the
signed client data, the origin, the RP ID hash, the signature and the flags.
A wrong challenge, origin or RP ID is a 400.

The relying party is this site: `WEBAUTHN_RP_ID` (default: the host the
request came to) and `WEBAUTHN_ORIGINS` (default: the scheme and host of the
request). Django's ALLOWED_HOSTS has already vetted that host.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from accounts import mfa, security_events
from accounts.models import Passkey, RecoveryCode, SecurityLogEntry, TotpDevice, User
from core.errors import Invalid, NotFound

CHALLENGE_SECONDS = 300
PASSKEYS_MAX = 20
NAME_MAX = 64

PURPOSE_REGISTER = "register"
PURPOSE_LOGIN = "login"


class CeremonyRefused(Invalid):
    """The authenticator's answer does not hold: wrong challenge, origin, RP ID, key or signature (400)."""


def relying_party(request: HttpRequest) -> tuple[str, list[str]]:
    """This site as WebAuthn sees it: the RP ID and the origins answers may come from."""
    host = request.get_host()
    rp_id = settings.WEBAUTHN_RP_ID or host.rsplit(":", 1)[0].strip("[]")
    origins = settings.WEBAUTHN_ORIGINS or [f"{request.scheme}://{host}"]
    return rp_id, list(origins)


def _challenge_key(challenge: bytes | str) -> str:
    text = challenge if isinstance(challenge, str) else bytes_to_base64url(challenge)
    return f"{settings.RATELIMIT_CACHE_PREFIX}webauthn:{text}"


def _challenge_keep(challenge: bytes, *, purpose: str, user_id: int | None) -> None:
    cache.set(_challenge_key(challenge), {"purpose": purpose, "user": user_id}, CHALLENGE_SECONDS)


def _challenge_take(credential: object, *, purpose: str) -> tuple[bytes, int | None]:
    """Take the challenge an answer signed out of the cache (once), or refuse the answer."""
    refused = CeremonyRefused({"credential": "This answer is for a challenge this server did not give, or it expired."})
    try:
        response = credential["response"]  # type: ignore[index]
        client_data = json.loads(base64url_to_bytes(response["clientDataJSON"]))
        challenge = str(client_data["challenge"])
    except (KeyError, TypeError, ValueError):
        raise CeremonyRefused({"credential": "This is not a WebAuthn answer."}) from None
    if len(challenge) > 200:
        raise refused
    key = _challenge_key(challenge)
    kept = cache.get(key)
    # Deleting is the lock: of two answers racing with one challenge, one wins.
    if not isinstance(kept, dict) or kept.get("purpose") != purpose or not cache.delete(key):
        raise refused
    return base64url_to_bytes(challenge), kept.get("user")


def _credential_id(credential: object) -> str:
    raw = credential.get("rawId") or credential.get("id") if isinstance(credential, dict) else None
    if not isinstance(raw, str) or not raw or len(raw) > 1400:
        raise CeremonyRefused({"credential": "This is not a WebAuthn answer."})
    return raw.rstrip("=")


# --- Registering ------------------------------------------------------------------------


def register_options(*, user: User, request: HttpRequest) -> dict[str, Any]:
    """Options for `navigator.credentials.create()`: a new challenge; the user's keys excluded."""
    rp_id, _ = relying_party(request)
    existing = Passkey.objects.filter(user=user).values_list("credential_id", flat=True)
    options = generate_registration_options(
        rp_id=rp_id,
        rp_name=settings.MFA_ISSUER,
        user_name=user.username,
        user_id=str(user.pk).encode(),
        user_display_name=user.shown_name,
        # Discoverable, so it can sign in without a username.
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED, user_verification=UserVerificationRequirement.PREFERRED
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=base64url_to_bytes(key)) for key in existing],
        timeout=CHALLENGE_SECONDS * 1000,
    )
    _challenge_keep(options.challenge, purpose=PURPOSE_REGISTER, user_id=user.pk)
    result: dict[str, Any] = json.loads(options_to_json(options))
    return result


@dataclass(frozen=True)
class Registered:
    passkey: Passkey
    # Ten recovery codes when this is the account's first second factor, else empty.
    recovery_codes: list[str]


@transaction.atomic
def register_verify(*, user: User, credential: object, name: object, request: HttpRequest) -> Registered:
    """Keep a new passkey after checking the authenticator's answer to this account's challenge."""
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > NAME_MAX:
        raise Invalid({"name": f"Name the passkey (1–{NAME_MAX} characters), e.g. the device it is on."})
    challenge, user_id = _challenge_take(credential, purpose=PURPOSE_REGISTER)
    if user_id != user.pk:
        raise CeremonyRefused({"credential": "This answer is for another account's challenge."})
    rp_id, origins = relying_party(request)
    try:
        verified = verify_registration_response(
            credential=credential,  # type: ignore[arg-type]
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origins,
        )
    except (InvalidRegistrationResponse, ValueError, KeyError, TypeError) as error:
        raise CeremonyRefused({"credential": f"The passkey could not be verified: {error}"}) from None
    if Passkey.objects.filter(user=user).count() >= PASSKEYS_MAX:
        raise Invalid(f"An account can have at most {PASSKEYS_MAX} passkeys.")
    credential_id = bytes_to_base64url(verified.credential_id)
    if Passkey.objects.filter(credential_id=credential_id).exists():
        raise Invalid({"credential": "This passkey is already registered."})
    transports = credential.get("response", {}).get("transports", []) if isinstance(credential, dict) else []
    known = {transport.value for transport in AuthenticatorTransport}
    first_factor = not _has_second_factor(user)
    passkey = Passkey.objects.create(
        user=user,
        name=name.strip(),
        credential_id=credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        transports=[t for t in transports if isinstance(t, str) and t in known] if isinstance(transports, list) else [],
    )
    codes: list[str] = []
    if first_factor and not RecoveryCode.objects.filter(user=user, used_at__isnull=True).exists():
        codes = mfa.recovery_codes_replace(user)
    security_events.record(user=user, kind=SecurityLogEntry.Kind.PASSKEY_ADDED, request=request, via=passkey.name)
    return Registered(passkey=passkey, recovery_codes=codes)


def _has_second_factor(user: User) -> bool:
    return (
        TotpDevice.objects.filter(user=user, confirmed_at__isnull=False).exists()
        or Passkey.objects.filter(user=user).exists()
    )


def passkeys_of(user: User) -> list[Passkey]:
    return list(Passkey.objects.filter(user=user))


def passkey_payload(passkey: Passkey) -> dict[str, Any]:
    return {
        "id": passkey.pk,
        "name": passkey.name,
        "created_at": passkey.created_at,
        "last_used_at": passkey.last_used_at,
    }


@transaction.atomic
def passkey_rename(*, user: User, passkey_id: int, name: object) -> Passkey:
    passkey = Passkey.objects.filter(user=user, pk=passkey_id).first()
    if passkey is None:
        raise NotFound("No such passkey.")
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > NAME_MAX:
        raise Invalid({"name": f"Name the passkey (1–{NAME_MAX} characters)."})
    passkey.name = name.strip()
    passkey.save(update_fields=["name"])
    return passkey


@transaction.atomic
def passkey_remove(*, user: User, passkey_id: int, code: object = None, request: HttpRequest | None = None) -> None:
    """Remove one of the user's passkeys. Removing the last second factor turns two-factor off: that takes a code."""
    passkey = Passkey.objects.select_for_update().filter(user=user, pk=passkey_id).first()
    if passkey is None:
        raise NotFound("No such passkey.")
    has_totp = TotpDevice.objects.filter(user=user, confirmed_at__isnull=False).exists()
    last = not has_totp and not Passkey.objects.filter(user=user).exclude(pk=passkey.pk).exists()
    if last:
        if mfa.verify(user=user, code=code) is None:
            raise mfa.CodeRefused(
                {"code": "This is your last second factor: enter a recovery code to remove it and turn two-factor off."}
            )
        RecoveryCode.objects.filter(user=user).delete()
    passkey.delete()
    security_events.record(user=user, kind=SecurityLogEntry.Kind.PASSKEY_REMOVED, request=request, via=passkey.name)


# --- Signing in -------------------------------------------------------------------------


def login_options(*, request: HttpRequest, user: User | None) -> dict[str, Any]:
    """Options for `navigator.credentials.get()`.

    With `user` (the password is done: a second factor), only that account's
    keys are offered and accepted. Without, any passkey on the device may
    answer (password-less), and it must verify its user (PIN, biometrics).
    """
    rp_id, _ = relying_party(request)
    allowed = []
    if user is not None:
        allowed = [
            PublicKeyCredentialDescriptor(id=base64url_to_bytes(passkey.credential_id)) for passkey in passkeys_of(user)
        ]
    options = generate_authentication_options(
        rp_id=rp_id,
        allow_credentials=allowed,
        user_verification=UserVerificationRequirement.PREFERRED if user else UserVerificationRequirement.REQUIRED,
        timeout=CHALLENGE_SECONDS * 1000,
    )
    _challenge_keep(options.challenge, purpose=PURPOSE_LOGIN, user_id=user.pk if user else None)
    result: dict[str, Any] = json.loads(options_to_json(options))
    return result


@transaction.atomic
def login_verify(*, credential: object, request: HttpRequest, user: User | None) -> tuple[User, Passkey]:
    """Check a passkey's answer to a sign-in challenge; return the account it signs in and the key.

    `user` is the account whose password was given (a second factor), or
    None for a password-less sign-in, where the key names the account.
    """
    challenge, bound_to = _challenge_take(credential, purpose=PURPOSE_LOGIN)
    if bound_to != (user.pk if user else None):
        raise CeremonyRefused({"credential": "This answer is for another sign-in's challenge."})
    passkey = Passkey.objects.select_for_update().filter(credential_id=_credential_id(credential)).first()
    if passkey is None or (user is not None and passkey.user_id != user.pk):
        raise CeremonyRefused({"credential": "This passkey is not registered for this account."})
    rp_id, origins = relying_party(request)
    try:
        verified = verify_authentication_response(
            credential=credential,  # type: ignore[arg-type]
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origins,
            credential_public_key=bytes(passkey.public_key),
            credential_current_sign_count=passkey.sign_count,
            require_user_verification=user is None,
        )
    except (InvalidAuthenticationResponse, ValueError, KeyError, TypeError) as error:
        raise CeremonyRefused({"credential": f"The passkey could not be verified: {error}"}) from None
    owner = User.objects.get(pk=passkey.user_id)
    if not owner.is_active:
        raise CeremonyRefused({"credential": "This account is deactivated."})
    passkey.sign_count = verified.new_sign_count
    passkey.last_used_at = timezone.now()
    passkey.save(update_fields=["sign_count", "last_used_at"])
    return owner, passkey
