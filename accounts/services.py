"""Changes to accounts: registration, profile and access edits, signing out, deactivation, erasure, tokens."""

from __future__ import annotations

import secrets
import unicodedata
import uuid
from collections.abc import Callable, Iterable

import structlog
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.password_validation import validate_password
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.db.models.functions import Lower
from django.http import HttpRequest
from django.utils import timezone
from rest_framework_simplejwt.exceptions import InvalidToken, TokenBackendError, TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.state import token_backend
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from accounts import security_events
from accounts.models import ModerationAction, SecurityLogEntry, TokenFamily, User, username_validator
from accounts.names import display_name_clean, username_key, username_skeleton
from accounts.tokens import refresh_token_issue, token_family, token_user
from core import publish
from core.errors import Invalid, NotFound

log = structlog.get_logger(__name__)

# The notice that closes the sockets of an ended sign-in (4001): with "session"
# those opened with that browser session, with "family" those opened with a
# token of that family, with neither every socket of the user.
SESSION_ENDED = "session.ended"

DISPLAY_NAME_MAX = 64


def clean_display_name(display_name: object) -> str:
    """Return the display name as it is kept: hidden characters removed (accounts.names), at most 64 characters.

    A name of nothing but hidden characters is refused rather than emptied,
    so nobody gets a blank name by accident (an empty one shows the username).
    """
    if not isinstance(display_name, str):
        raise Invalid({"display_name": "Must be a string."})
    # The limit counts what was sent (trimmed), as the API states it, hidden characters included.
    if len(display_name.strip()) > DISPLAY_NAME_MAX:
        raise Invalid({"display_name": f"Use at most {DISPLAY_NAME_MAX} characters."})
    cleaned = display_name_clean(display_name)
    if not cleaned and display_name.strip():
        raise Invalid({"display_name": "Use some visible characters, or leave it empty to show your username."})
    return cleaned


@transaction.atomic
def user_register(
    *,
    username: str,
    email: str,
    password: str,
    display_name: str = "",
    actor: User | None = None,
    reason: str = "",
    via: str = "api",
) -> User:
    """Create an account, checking every field and reporting all problems at once.

    Staff creating an account for someone (`actor`, from the admin) are logged with their reason.
    """
    errors: dict[str, list[str]] = {}
    # Compatibility forms become plain ones first: a fullwidth ＡＬＩＣＥ is ALICE.
    username = unicodedata.normalize("NFKC", username.strip())
    email = email.strip()
    try:
        username_validator(username)
    except ValidationError as exc:
        errors["username"] = list(exc.messages)
    else:
        if User.objects.alias(username_lower=Lower("username")).filter(username_lower=username_key(username)).exists():
            errors["username"] = ["That username is taken."]
        elif User.objects.filter(username_skeleton=username_skeleton(username)).exists():
            # aIice, a1ice: others would take it for someone they know.
            errors["username"] = ["That username looks too much like an existing one."]
    try:
        validate_email(email)
    except ValidationError:
        errors["email"] = ["Enter a valid email address."]
    else:
        if User.objects.filter(email__iexact=email).exists():
            errors["email"] = ["An account with this email already exists."]
    try:
        display_name = clean_display_name(display_name)
    except Invalid as exc:
        errors.update(exc.detail)  # type: ignore[arg-type]
    try:
        validate_password(password, User(username=username, email=email, display_name=display_name))
    except ValidationError as exc:
        errors["password"] = list(exc.messages)
    if errors:
        raise Invalid(errors)
    try:
        with transaction.atomic():
            # Staff creating an account vouch for its address; a newcomer proves theirs by email.
            verify = settings.EMAIL_VERIFICATION and actor is None
            user = User.objects.create_user(
                username=username, email=email, password=password, display_name=display_name, email_verified=not verify
            )
            if verify:
                from accounts.tasks import email_verification_send

                email_verification_send.enqueue(user.pk)
            first_account = _first_account_make_admin(user)
    except IntegrityError:
        # Lost a race for the same name or address.
        raise Invalid({"username": "That username or email is taken."}) from None
    for hook in _registration_hooks:
        hook(user, first_account)
    if actor is not None:
        moderation_record(
            actor=actor, action=ModerationAction.Kind.USER_CREATE, target_user=user, reason=reason, via=via
        )
    return user


# Any fixed number will do: it names the lock that orders first registrations on PostgreSQL.
_FIRST_ACCOUNT_LOCK = 0x636861740001


def _first_account_make_admin(user: User) -> bool:
    """Make `user` the server's admin if it is the first account; return whether it was.

    Two first registrations at once must not both see an empty table: on
    PostgreSQL a transaction-scoped advisory lock orders them, and the check
    runs after it, so the later one sees the earlier one's committed account.
    SQLite already runs one writing transaction at a time.
    """
    others = User.objects.exclude(pk=user.pk)
    if others.exists():
        return False  # the usual case, decided without waiting for anyone
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_FIRST_ACCOUNT_LOCK])
        if others.exists():
            return False
    user.is_staff = user.is_superuser = True
    user.save(update_fields=["is_staff", "is_superuser"])
    log.info("accounts.first_account_admin", user_id=user.pk)
    return True


RegistrationHook = Callable[[User, bool], object]

# What other apps do, in the registration's transaction, for a new account
# (rooms makes it join the default channels, and opens #general for the first
# account): accounts imports no app above it.
_registration_hooks: list[RegistrationHook] = []


def user_registration_hook_register(hook: RegistrationHook) -> None:
    """Have `hook(user, first_account)` run inside every registration's transaction."""
    if hook not in _registration_hooks:
        _registration_hooks.append(hook)


# Called inside the transaction of a profile change that others see (the
# display name), after its write. The rooms app records there the event that
# tells the people who share a room with the user; accounts cannot import rooms.
_profile_change_listeners: list[Callable[[User], object]] = []


def profile_change_listener_register(listener: Callable[[User], object]) -> None:
    """Call `listener` with the user, in the transaction of each change of their display name."""
    if listener not in _profile_change_listeners:
        _profile_change_listeners.append(listener)


@transaction.atomic
def user_update_profile(
    *, user: User, display_name: object, actor: User | None = None, reason: str = "", via: str = "api"
) -> User:
    """Change a display name; the people who share a room with the user are told.

    Staff changing someone else's (`actor`) are logged with their reason.
    """
    cleaned = clean_display_name(display_name)
    if cleaned == user.display_name:
        return user
    before = user.display_name
    user.display_name = cleaned
    user.save(update_fields=["display_name"])
    if actor is not None and actor.pk != user.pk:
        moderation_record(
            actor=actor,
            action=ModerationAction.Kind.USER_UPDATE,
            target_user=user,
            reason=reason,
            via=via,
            detail=f"display name: {before!r} → {user.display_name!r}",
        )
    for listener in _profile_change_listeners:
        listener(user)
    return user


@transaction.atomic
def user_access_set(
    *,
    actor: User,
    user: User,
    is_staff: bool,
    is_superuser: bool,
    groups: Iterable[Group],
    permissions: Iterable[Permission],
    reason: str = "",
    via: str = "admin",
) -> User:
    """Set who may use the admin and what they may do there; any change is logged with its reason."""
    changes = []
    if (user.is_staff, user.is_superuser) != (is_staff, is_superuser):
        changes.append(f"staff: {is_staff}, superuser: {is_superuser}")
        user.is_staff, user.is_superuser = is_staff, is_superuser
        user.save(update_fields=["is_staff", "is_superuser"])
    wanted_groups, wanted_permissions = set(groups), set(permissions)
    if set(user.groups.all()) != wanted_groups:
        user.groups.set(wanted_groups)
        changes.append("groups: " + (", ".join(sorted(group.name for group in wanted_groups)) or "none"))
    if set(user.user_permissions.all()) != wanted_permissions:
        user.user_permissions.set(wanted_permissions)
        changes.append(f"{len(wanted_permissions)} permission(s)")
    if changes:
        moderation_record(
            actor=actor,
            action=ModerationAction.Kind.USER_UPDATE,
            target_user=user,
            reason=reason,
            via=via,
            detail="; ".join(changes),
        )
    return user


@transaction.atomic
def refresh_token_revoke(*, user: User, refresh: str) -> None:
    """Sign out one API sign-in: blacklist the refresh token and revoke its family.

    The family's access tokens stop working at once and its sockets close (4001).
    """
    try:
        token = RefreshToken(refresh)  # type: ignore[arg-type]
        family = token_family(token)
    except (TokenError, InvalidToken):
        raise Invalid({"refresh": "This token is invalid or already used."}) from None
    if str(token.get("user_id")) != str(user.pk):
        raise Invalid({"refresh": "This token belongs to another account."})
    token.blacklist()
    if family is not None:
        token_family_revoke(user_id=user.pk, family=family)


def tokens_refresh(*, refresh: str) -> dict[str, str]:
    """Rotate a refresh token: a new access and refresh pair of the same sign-in, the old one blacklisted.

    A refresh token can be presented once. One presented again, after it was
    rotated or signed out, means two parties hold copies of it, one of them
    probably a thief: the whole sign-in (token family) is revoked, so every
    token descended from it stops, access tokens included, and its sockets
    close. The blacklisting is the rotation's lock: of two refreshes racing
    with one token, only the one that blacklists it gets a new pair.

    Raise TokenError for a token that is not a live refresh token, and
    AuthenticationFailed for one `token_user` refuses.
    """
    try:
        token = RefreshToken(refresh)  # type: ignore[arg-type]
    except TokenError:
        _revoke_if_reused(refresh)
        raise
    user = token_user(token)
    family = token_family(token)
    with transaction.atomic():
        outstanding, _ = OutstandingToken.objects.get_or_create(
            jti=token[api_settings.JTI_CLAIM],
            defaults={
                "user": user,
                "token": refresh,
                "created_at": token.current_time,
                "expires_at": datetime_from_epoch(token["exp"]),
            },
        )
        _, first_use = BlacklistedToken.objects.get_or_create(token=outstanding)
        if first_use:
            if family is not None:
                # For the profile's list of sign-ins: when this one was last used.
                TokenFamily.objects.filter(pk=family).update(last_used_at=timezone.now())
            pair = {"access": str(token.access_token)}
            token.set_jti()
            token.set_exp()
            token.set_iat()
            token.outstand()
            pair["refresh"] = str(token)
            return pair
    if family is not None:
        _sign_in_stolen(user_id=int(token[api_settings.USER_ID_CLAIM]), family=family)
    raise TokenError("Token is blacklisted")


def _revoke_if_reused(refresh: str) -> None:
    """Revoke the sign-in of a genuine refresh token that was refused because it is blacklisted."""
    try:
        payload = token_backend.decode(refresh, verify=True)  # type: ignore[arg-type]
        family = token_family(payload)
    except (TokenBackendError, InvalidToken):
        return  # forged, expired or malformed: it proves nothing about a sign-in
    user_id, jti = payload.get(api_settings.USER_ID_CLAIM), payload.get(api_settings.JTI_CLAIM)
    if payload.get(api_settings.TOKEN_TYPE_CLAIM) != "refresh" or family is None or user_id is None:
        return
    if BlacklistedToken.objects.filter(token__jti=jti).exists():
        _sign_in_stolen(user_id=int(user_id), family=family)


@transaction.atomic
def _sign_in_stolen(*, user_id: int, family: uuid.UUID) -> None:
    log.warning("auth.refresh_reused", user_id=user_id, family=family.hex)
    token_family_revoke(user_id=user_id, family=family)


def token_family_revoke(*, user_id: int, family: uuid.UUID) -> None:
    """Revoke one sign-in's tokens (refresh and access alike) and close its sockets once committed."""
    TokenFamily.objects.filter(pk=family, user_id=user_id, revoked_at__isnull=True).update(revoked_at=timezone.now())
    notice = {"type": SESSION_ENDED, "family": family.hex}
    transaction.on_commit(lambda: publish.notify_user(user_id, notice))


@transaction.atomic
def sign_in_end(*, user: User, family: uuid.UUID) -> None:
    """End one of the user's own API sign-ins from the profile: its tokens stop, its sockets close."""
    if not TokenFamily.objects.filter(pk=family, user=user, revoked_at__isnull=True).exists():
        raise NotFound("No such sign-in.")
    token_family_revoke(user_id=user.pk, family=family)


def session_end(*, user_id: int, session_key: str) -> None:
    """Close the sockets opened with a browser session that just logged out (4001)."""
    publish.notify_user(user_id, {"type": SESSION_ENDED, "session": session_key})


@transaction.atomic
def user_sign_out_everywhere(*, user: User, request: HttpRequest | None = None) -> User:
    """End every sign-in of the user's: access and refresh tokens, browser sessions, open sockets (4001).

    Raising the token version refuses every token minted before and changes
    the hash browser sessions are checked against (accounts.models.User).
    """
    User.objects.filter(pk=user.pk).update(token_version=F("token_version") + 1)
    user.refresh_from_db(fields=["token_version"])
    refresh_tokens_revoke_all(user=user)
    security_events.record(user=user, kind=SecurityLogEntry.Kind.SIGNED_OUT_EVERYWHERE, request=request)
    user_id = user.pk
    transaction.on_commit(lambda: publish.notify_user(user_id, {"type": SESSION_ENDED}))
    return user


def refresh_tokens_revoke_all(*, user: User) -> int:
    """Blacklist every outstanding refresh token of the user's (password change, deactivation)."""
    outstanding = OutstandingToken.objects.filter(user=user).exclude(blacklistedtoken__isnull=False)
    tokens = list(outstanding)
    BlacklistedToken.objects.bulk_create([BlacklistedToken(token=token) for token in tokens], ignore_conflicts=True)
    return len(tokens)


DeactivationHook = Callable[[User, User | None], object]

# What other apps do, in the same transaction, when an account is deactivated
# (rooms hands on the channels it owned): accounts imports no app above it.
_deactivation_hooks: list[DeactivationHook] = []


def user_deactivation_hook_register(hook: DeactivationHook) -> None:
    """Have `hook(user, actor)` run inside every deactivation's transaction."""
    if hook not in _deactivation_hooks:
        _deactivation_hooks.append(hook)


@transaction.atomic
def user_deactivate(*, user: User, actor: User | None = None, reason: str = "", via: str = "admin") -> User:
    """Deactivate an account site-wide: no more log-ins, tokens revoked, open sockets closed (4003).

    The channels it was the last active owner of pass to their longest-standing
    admin, else member (the registered hooks). With an `actor` (a moderator),
    the action and its reason go into the moderation log.
    """
    if user.is_active:
        user.is_active = False
        user.save(update_fields=["is_active"])
        if actor is not None:
            moderation_record(
                actor=actor, action=ModerationAction.Kind.USER_DEACTIVATE, target_user=user, reason=reason, via=via
            )
    # Also when already inactive: a channel it still held is handed on now.
    for hook in _deactivation_hooks:
        hook(user, actor)
    refresh_tokens_revoke_all(user=user)
    user_id = user.pk
    transaction.on_commit(lambda: publish.notify_user(user_id, {"type": "user.deactivated"}))
    return user


@transaction.atomic
def user_reactivate(*, user: User, actor: User, reason: str = "", via: str = "admin") -> User:
    """Let a deactivated account log in again (with a new log-in: its old tokens stay revoked).

    An erased account stays closed: there is no one left to give it back to.
    """
    if user.erased_at is not None:
        raise Invalid("This account's personal data was erased; it cannot be reactivated.")
    if not user.is_active:
        user.is_active = True
        user.save(update_fields=["is_active"])
        moderation_record(
            actor=actor, action=ModerationAction.Kind.USER_REACTIVATE, target_user=user, reason=reason, via=via
        )
    return user


ErasureHook = Callable[[User], object]

# What other apps do, in the same transaction, when an account is erased
# (events stop carrying the old name).
_erasure_hooks: list[ErasureHook] = []


def user_erasure_hook_register(hook: ErasureHook) -> None:
    """Have `hook(user)` run inside every erasure's transaction, after the personal fields are cleared."""
    if hook not in _erasure_hooks:
        _erasure_hooks.append(hook)


def _erased_username(user: User) -> str:
    username = f"deleted-{user.pk}"
    if User.objects.filter(username__iexact=username).exclude(pk=user.pk).exists():
        # Someone registered the placeholder as a name of their own.
        username = f"deleted-{user.pk}-{secrets.token_hex(4)}"
    return username


@transaction.atomic
def user_erase(*, user: User, actor: User, reason: str, via: str = "admin") -> User:
    """Erase an account's personal data for good, keeping the history it took part in consistent.

    The account is deactivated (tokens revoked, sockets closed, its channels
    handed on); its username becomes `deleted-<id>`, its display name, names
    and email are cleared, its password made unusable and its admin access
    removed. Its messages, reactions and memberships stay, shown as from
    "Deleted user"; the event record and the moderation log stop carrying
    the old name. Both steps go into the moderation log with the reason.
    """
    if not reason.strip():
        raise Invalid({"reason": "Give a reason: it goes into the moderation log."})
    user = User.objects.select_for_update().get(pk=user.pk)
    if user.erased_at is not None:
        return user
    user_deactivate(user=user, actor=actor, reason=reason, via=via)
    user.username = _erased_username(user)
    user.display_name = user.first_name = user.last_name = user.email = ""
    user.set_unusable_password()
    user.is_staff = user.is_superuser = False
    user.erased_at = timezone.now()
    user.save()
    user.groups.clear()
    user.user_permissions.clear()
    # The logs keep what was done to and by this account, but not its old name.
    ModerationAction.objects.filter(target_user=user).update(target_username=user.username)
    ModerationAction.objects.filter(actor=user).update(actor_username=user.username)
    LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(User), object_id=str(user.pk)).update(
        object_repr=user.username
    )
    moderation_record(actor=actor, action=ModerationAction.Kind.USER_ERASE, target_user=user, reason=reason, via=via)
    for hook in _erasure_hooks:
        hook(user)
    # Open pages show "Deleted user" at once instead of the old name.
    for listener in _profile_change_listeners:
        listener(user)
    return user


def tokens_for(user: User, *, user_agent: str = "", ip: str | None = None) -> dict[str, str]:
    """Start a sign-in for an active user: an access and refresh pair of a new family."""
    # simplejwt's for_user() does not check is_active (CVE-2024-22513).
    if not user.is_active:
        raise Invalid("This account is inactive.")
    refresh = refresh_token_issue(user, user_agent=user_agent, ip=ip)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


@transaction.atomic
def user_set_password(*, user: User, password: str) -> User:
    """Change a user's password and end every sign-in they have (`user_sign_out_everywhere`).

    Whoever learnt the old password must not keep a way in through a token,
    a browser session or an open socket. A caller that keeps the current
    browser session signed in calls update_session_auth_hash afterwards.
    """
    user.set_password(password)
    user.save(update_fields=["password"])
    return user_sign_out_everywhere(user=user)


MODERATION_REASON_MAX = 1000


def moderation_record(
    *,
    actor: User,
    action: str,
    target_user: User | None = None,
    room_id: int | None = None,
    message_id: int | None = None,
    report_id: int | None = None,
    reason: str = "",
    via: str = "api",
    detail: str = "",
) -> ModerationAction:
    """Write one entry of the moderation log: who did what to whom, where, when and why.

    Called inside the acting service's transaction, so the entry exists exactly
    when the action does.
    """
    return ModerationAction.objects.create(
        actor=actor,
        actor_username=actor.username,
        action=action,
        target_user=target_user,
        target_username=target_user.username if target_user is not None else "",
        room_id=room_id,
        message_id=message_id,
        report_id=report_id,
        reason=(reason or "").strip()[:MODERATION_REASON_MAX],
        via=via,
        detail=detail[:500],
    )
