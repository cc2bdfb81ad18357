"""Changes to accounts: registration, profile and access edits, deactivation, erasure, token revocation."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable

from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.password_validation import validate_password
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import ModerationAction, User, username_validator
from core import publish
from core.errors import Invalid

DISPLAY_NAME_MAX = 64


def clean_display_name(display_name: object) -> str:
    if not isinstance(display_name, str):
        raise Invalid({"display_name": "Must be a string."})
    display_name = display_name.strip()
    if len(display_name) > DISPLAY_NAME_MAX:
        raise Invalid({"display_name": f"Use at most {DISPLAY_NAME_MAX} characters."})
    return display_name


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
    username = username.strip()
    email = email.strip()
    try:
        username_validator(username)
    except ValidationError as exc:
        errors["username"] = list(exc.messages)
    else:
        if User.objects.filter(username__iexact=username).exists():
            errors["username"] = ["That username is taken."]
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
            user = User.objects.create_user(
                username=username, email=email, password=password, display_name=display_name
            )
    except IntegrityError:
        # Lost a race for the same name or address.
        raise Invalid({"username": "That username or email is taken."}) from None
    if actor is not None:
        moderation_record(
            actor=actor, action=ModerationAction.Kind.USER_CREATE, target_user=user, reason=reason, via=via
        )
    return user


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


def refresh_token_revoke(*, user: User, refresh: str) -> None:
    """Blacklist one refresh token of the user's, so it can never be used again."""
    try:
        token = RefreshToken(refresh)  # type: ignore[arg-type]
    except TokenError:
        raise Invalid({"refresh": "This token is invalid or already used."}) from None
    if str(token.get("user_id")) != str(user.pk):
        raise Invalid({"refresh": "This token belongs to another account."})
    token.blacklist()


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


def tokens_for(user: User) -> dict[str, str]:
    """Mint an access and refresh pair for an active user."""
    # simplejwt's for_user() does not check is_active (CVE-2024-22513).
    if not user.is_active:
        raise Invalid("This account is inactive.")
    refresh = RefreshToken.for_user(user)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


@transaction.atomic
def user_set_password(*, user: User, password: str) -> User:
    """Change a user's password and revoke every API refresh token they hold.

    Whoever learnt the old password must not keep a way in through a token.
    The caller keeps the current browser session (update_session_auth_hash);
    Django ends the user's other sessions, whose hash no longer matches.
    """
    user.set_password(password)
    user.save(update_fields=["password"])
    refresh_tokens_revoke_all(user=user)
    return user


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
