"""Changes to accounts: registration, profile edits, token revocation."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
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
def user_register(*, username: str, email: str, password: str, display_name: str = "") -> User:
    """Create an account, checking every field and reporting all problems at once."""
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
            return User.objects.create_user(
                username=username, email=email, password=password, display_name=display_name
            )
    except IntegrityError:
        # Lost a race for the same name or address.
        raise Invalid({"username": "That username or email is taken."}) from None


# Called inside the transaction of a profile change that others see (the
# display name), after its write. The rooms app records there the event that
# tells the people who share a room with the user; accounts cannot import rooms.
_profile_change_listeners: list[Callable[[User], object]] = []


def profile_change_listener_register(listener: Callable[[User], object]) -> None:
    """Call `listener` with the user, in the transaction of each change of their display name."""
    if listener not in _profile_change_listeners:
        _profile_change_listeners.append(listener)


@transaction.atomic
def user_update_profile(*, user: User, display_name: object) -> User:
    """Change the user's display name; the people who share a room with them are told."""
    cleaned = clean_display_name(display_name)
    if cleaned == user.display_name:
        return user
    user.display_name = cleaned
    user.save(update_fields=["display_name"])
    for listener in _profile_change_listeners:
        listener(user)
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


@transaction.atomic
def user_deactivate(*, user: User, actor: User | None = None, reason: str = "", via: str = "admin") -> User:
    """Deactivate an account site-wide: no more log-ins, tokens revoked, open sockets closed (4003).

    With an `actor` (a moderator), the action and its reason go into the moderation log.
    """
    if user.is_active:
        user.is_active = False
        user.save(update_fields=["is_active"])
        if actor is not None:
            moderation_record(
                actor=actor, action=ModerationAction.Kind.USER_DEACTIVATE, target_user=user, reason=reason, via=via
            )
    refresh_tokens_revoke_all(user=user)
    user_id = user.pk
    transaction.on_commit(lambda: publish.notify_user(user_id, {"type": "user.deactivated"}))
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
    )
