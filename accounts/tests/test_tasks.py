"""The accounts' housekeeping jobs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.services import tokens_for
from accounts.tasks import expired_tokens_prune
from jobs import schedule

pytestmark = pytest.mark.django_db


def test_expired_refresh_tokens_are_forgotten_and_live_ones_kept(alice, bob):
    tokens_for(alice)
    tokens_for(bob)
    expired = OutstandingToken.objects.get(user=alice)
    expired.expires_at = timezone.now() - timedelta(minutes=1)
    expired.save(update_fields=["expires_at"])
    BlacklistedToken.objects.create(token=expired)

    assert expired_tokens_prune.call() == 2  # the token and its blacklist row

    assert list(OutstandingToken.objects.values_list("user", flat=True)) == [bob.pk]
    assert expired_tokens_prune.call() == 0


def test_expired_tokens_are_pruned_daily_by_the_scheduler():
    periods = {job.task.module_path: job.interval for job in schedule.periodic_jobs()}

    assert periods[expired_tokens_prune.module_path] == timedelta(days=1)
