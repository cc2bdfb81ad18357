"""Changes to accounts: registration, profile edits, token revocation."""

from __future__ import annotations

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import User, username_validator
from accounts.realtime import notify_user_sockets
from chatproject.errors import Invalid

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


@transaction.atomic
def user_update_profile(*, user: User, display_name: object) -> User:
    user.display_name = clean_display_name(display_name)
    user.save(update_fields=["display_name"])
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
def user_deactivate(*, user: User) -> User:
    """Deactivate an account site-wide: no more log-ins, tokens revoked, open sockets closed (4003)."""
    if user.is_active:
        user.is_active = False
        user.save(update_fields=["is_active"])
    refresh_tokens_revoke_all(user=user)
    user_id = user.pk
    transaction.on_commit(lambda: notify_user_sockets(user_id, {"type": "user.deactivated"}))
    return user


def tokens_for(user: User) -> dict[str, str]:
    """Mint an access and refresh pair for an active user."""
    # simplejwt's for_user() does not check is_active (CVE-2024-22513).
    if not user.is_active:
        raise Invalid("This account is inactive.")
    refresh = RefreshToken.for_user(user)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}
