"""The files' background jobs: thumbnails, removing bytes from storage, and the periodic sweeps."""

from __future__ import annotations

from datetime import timedelta

import jobs
from files import services
from files.storage import files_storage


@jobs.task(max_attempts=5, retry_delay=timedelta(seconds=10))
def thumbnail_make(file_id: int) -> bool:
    """Make an image's thumbnail and announce it (message.updated). Idempotent: a made thumbnail is kept."""
    return services.thumbnail_store(file_id)


@jobs.task(max_attempts=10, retry_delay=timedelta(minutes=1))
def storage_delete(keys: list[str]) -> int:
    """Remove objects from storage; return how many. Idempotent: deleting a missing key is no error."""
    storage = files_storage()
    for key in keys:
        storage.delete(key)
    return len(keys)


@jobs.task(max_attempts=3)
def files_sweep() -> dict[str, int]:
    """Remove uploads never attached after 24 h, and deleted messages' files after FILE_RETENTION_DAYS."""
    return {"orphans": services.orphans_remove(), "expired": services.retention_remove()}


jobs.every(timedelta(hours=1), files_sweep)
