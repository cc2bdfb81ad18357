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
