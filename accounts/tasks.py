"""The accounts' background jobs: forgetting API tokens that have expired."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

import jobs


@jobs.task(max_attempts=3)
def expired_tokens_prune() -> int:
    """Delete refresh tokens past their expiry (and their blacklist rows); return how many.

    An expired token is refused on its signature's `exp` alone, so its row
    guards nothing any more. Idempotent: a second run finds nothing.
    """
    deleted, _ = OutstandingToken.objects.filter(expires_at__lt=timezone.now()).delete()
    return deleted


jobs.every(timedelta(days=1), expired_tokens_prune)


@jobs.task(max_attempts=8, retry_delay=timedelta(seconds=30), retry_delay_max=timedelta(minutes=30))
def password_reset_email_send(user_id: int) -> str:
    """Email a password reset link; the token is made now, so it is fresh when it arrives.

    A mail server that is down is retried (an exception retries); an address
    refused at SMTP time is not.
    """
    import smtplib

    from accounts.models import User
    from accounts.password_reset import password_reset_email

    user = User.objects.filter(pk=user_id, is_active=True).exclude(email="").first()
    if user is None:
        return "no account"
    try:
        password_reset_email(user).send()
    except smtplib.SMTPRecipientsRefused:
        return "refused"
    return "sent"


@jobs.task(max_attempts=8, retry_delay=timedelta(seconds=30), retry_delay_max=timedelta(minutes=30))
def email_verification_send(user_id: int) -> str:
    """Email a new account's confirmation link (a mail server that is down is retried)."""
    import smtplib

    from accounts.email_verification import verification_email
    from accounts.models import User

    user = User.objects.filter(pk=user_id, is_active=True, email_verified=False).exclude(email="").first()
    if user is None:
        return "nothing to confirm"
    try:
        verification_email(user).send()
    except smtplib.SMTPRecipientsRefused:
        return "refused"
    return "sent"
