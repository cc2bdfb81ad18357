"""The job queue's own housekeeping."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings

import jobs
from jobs.services import jobs_prune


@jobs.task(max_attempts=3)
def finished_jobs_prune() -> int:
    """Forget succeeded jobs after JOBS_KEEP_SUCCEEDED_DAYS; return how many went."""
    return jobs_prune(older_than=timedelta(days=settings.JOBS_KEEP_SUCCEEDED_DAYS))


jobs.every(timedelta(hours=1), finished_jobs_prune)
