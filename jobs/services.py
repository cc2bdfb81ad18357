"""What an operator does to jobs: queue a dead job again, and forget finished ones."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from jobs.models import Job

PRUNE_BATCH = 1_000


def job_retry(job_id: int) -> bool:
    """Queue a dead job again with a fresh set of attempts, due now; return whether it was dead."""
    with transaction.atomic():
        updated = Job.objects.filter(pk=job_id, state=Job.State.DEAD).update(
            state=Job.State.QUEUED,
            attempts=0,
            run_after=timezone.now(),
            finished_at=None,
            claimed_by="",
            lease_until=None,
        )
    return updated == 1


def jobs_prune(*, older_than: timedelta) -> int:
    """Delete succeeded jobs that finished more than `older_than` ago; return how many. Dead jobs stay."""
    cutoff = timezone.now() - older_than
    deleted = 0
    for _ in range(10_000):
        ids = list(
            Job.objects.filter(state=Job.State.SUCCEEDED, finished_at__lt=cutoff)
            .order_by("id")
            .values_list("id", flat=True)[:PRUNE_BATCH]
        )
        if not ids:
            break
        deleted += Job.objects.filter(id__in=ids).delete()[0]
    return deleted
