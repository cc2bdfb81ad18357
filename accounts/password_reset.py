"""Password reset by email: ask with an address, set a new password with the emailed token.

- Asking answers the same whether or not the address belongs to an account
  (no enumeration); for an active account with that address, an email job
  is queued in the same transaction.
- The token is the user id and a Django password-reset token: it is bound
  to the password hash and the last login, so it works once and dies with
  any password change; it expires after PASSWORD_RESET_TIMEOUT.
- Setting the password ends every sign-in of the account (tokens, browser
  sessions, open sockets), as a password change does.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode

from accounts.models import User
from accounts.services import user_set_password
from core.errors import Invalid

TOKEN_INVALID = "This reset link is invalid or has expired. Ask for a new one."  # noqa: S105 (a message)


def reset_token(user: User) -> str:
    return f"{urlsafe_base64_encode(force_bytes(user.pk))}-{default_token_generator.make_token(user)}"


def _token_user(token: str) -> User | None:
    encoded_id, _, check = token.partition("-")
    try:
        user_id = int(urlsafe_base64_decode(encoded_id).decode())
    except (ValueError, UnicodeDecodeError):
        return None
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None or not default_token_generator.check_token(user, check):
        return None
    return user


def reset_url(user: User) -> str:
    return f"{settings.SITE_URL}/password/reset/confirm/?token={reset_token(user)}"


def password_reset_request(*, email: str) -> None:
    """Queue a reset email to the active account with this address, if there is one; say nothing either way."""
    from accounts.tasks import password_reset_email_send

    user = User.objects.filter(email__iexact=email.strip(), is_active=True).exclude(email="").first()
    if user is None:
        return
    with transaction.atomic():
        password_reset_email_send.enqueue(user.pk)


def password_reset_email(user: User) -> EmailMultiAlternatives:
    context = {"name": user.display_name or user.username, "username": user.username, "url": reset_url(user)}
    email = EmailMultiAlternatives(
        subject="Reset your password",
        body=render_to_string("accounts/password_reset_email.txt", context),
        to=[user.email],
        headers={"Auto-Submitted": "auto-generated"},
    )
    email.attach_alternative(render_to_string("accounts/password_reset_email.html", context), "text/html")
    return email


def password_reset_confirm(*, token: str, password: str) -> User:
    """Set a new password with an emailed token; end every sign-in of the account; return it."""
    user = _token_user(token)
    if user is None:
        raise Invalid({"token": TOKEN_INVALID})
    try:
        validate_password(password, user)
    except ValidationError as error:
        raise Invalid({"password": " ".join(error.messages)}) from error
    with transaction.atomic():
        # The emailed link proves the address, as the verification link would have.
        User.objects.filter(pk=user.pk, email_verified=False).update(email_verified=True)
        return user_set_password(user=user, password=password)
