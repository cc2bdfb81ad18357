"""Email address verification for new accounts (EMAIL_VERIFICATION=1).

A newcomer's account starts with `email_verified` False and cannot sign in
(API tokens, the log-in page) until they follow the emailed link. The link
carries a signed token of the account and the address, valid for
EMAIL_VERIFICATION_MAX_AGE; changing the address would invalidate it. A
password reset by email proves the address too, so a lost verification
email is recovered through *Forgot your password?*.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from accounts.models import User
from core.errors import Invalid

SALT = "accounts.email-verification"
EMAIL_VERIFICATION_MAX_AGE = timedelta(days=3)
UNVERIFIED = "Confirm your email address first: follow the link we emailed you (or reset your password by email)."
LINK_INVALID = "This confirmation link is invalid or has expired. Reset your password by email to confirm instead."


def verification_token(user: User) -> str:
    return signing.dumps({"u": user.pk, "e": user.email.lower()}, salt=SALT, compress=True)


def verification_url(user: User) -> str:
    return f"{settings.SITE_URL}/email/verify/{verification_token(user)}/"


def verification_email(user: User) -> EmailMultiAlternatives:
    context = {"name": user.display_name or user.username, "url": verification_url(user)}
    email = EmailMultiAlternatives(
        subject="Confirm your email address",
        body=render_to_string("accounts/verification_email.txt", context),
        to=[user.email],
        headers={"Auto-Submitted": "auto-generated"},
    )
    email.attach_alternative(render_to_string("accounts/verification_email.html", context), "text/html")
    return email


def email_verify(*, token: str) -> User:
    """Mark the address of a token's account verified; return the account."""
    try:
        value = signing.loads(token, salt=SALT, max_age=EMAIL_VERIFICATION_MAX_AGE)
    except signing.BadSignature as exc:
        raise Invalid({"token": LINK_INVALID}) from exc
    user_id = value.get("u") if isinstance(value, dict) else None
    user = User.objects.filter(pk=user_id, is_active=True).first() if isinstance(user_id, int) else None
    if user is None or user.email.lower() != value.get("e"):
        raise Invalid({"token": LINK_INVALID})
    if not user.email_verified:
        User.objects.filter(pk=user.pk).update(email_verified=True)
        user.email_verified = True
    return user
