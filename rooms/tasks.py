"""The rooms' background jobs: pruning the event record on a schedule."""

from __future__ import annotations

from django.conf import settings

import jobs
from rooms.events import events_prune


@jobs.task(max_attempts=3)
def event_record_prune() -> int:
    """Delete events older than EVENT_RETENTION; return how many. Idempotent: a second run finds nothing."""
    deleted, _through = events_prune(older_than=settings.EVENT_RETENTION)
    return deleted


jobs.every(settings.EVENT_PRUNE_INTERVAL, event_record_prune)
