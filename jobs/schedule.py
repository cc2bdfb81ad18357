"""Periodic jobs: registered in one line, enqueued by whichever worker gets there first.

`every(timedelta(hours=1), some_task)` cuts time into slots of that length
(counted from the Unix epoch, so every worker agrees) and enqueues the task
once per slot with the key `periodic:<task>:<slot start>`. The key is unique
in the job table: two workers scheduling the same slot write one row, and a
worker that dies before or after writing it leaves nothing to redo twice.
A slot is skipped while the previous run is still queued or running, so
runs never overlap; slots missed while no worker ran are not caught up
(the next one does the work).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from django.tasks import task_backends

from jobs.backend import DatabaseBackend, JobTask

_periodic: dict[str, Periodic] = {}


@dataclasses.dataclass(frozen=True)
class Periodic:
    task: JobTask
    interval: timedelta

    @property
    def name(self) -> str:
        return self.task.module_path

    def slot_start(self, now: datetime) -> datetime:
        seconds = self.interval.total_seconds()
        return datetime.fromtimestamp(now.timestamp() // seconds * seconds, tz=UTC)

    def key(self, slot: datetime) -> str:
        return f"periodic:{self.name}:{slot.isoformat()}"


def every(interval: timedelta, task: JobTask) -> JobTask:
    """Run `task` (which takes no arguments) once every `interval`; return it, so this can decorate."""
    if interval < timedelta(seconds=1):
        raise ValueError("a periodic job runs at most once a second")
    _periodic[task.module_path] = Periodic(task=task, interval=interval)
    return task


def periodic_jobs() -> list[Periodic]:
    return list(_periodic.values())


def schedule_due(now: datetime) -> datetime | None:
    """Enqueue every periodic job whose current slot has no job yet; return when the next slot starts."""
    from jobs.models import Job

    next_due: datetime | None = None
    for periodic in periodic_jobs():
        slot = periodic.slot_start(now)
        unfinished = Job.objects.filter(
            task_path=periodic.name,
            key__startswith=f"periodic:{periodic.name}:",
            state__in=(Job.State.QUEUED, Job.State.RUNNING),
        )
        if not unfinished.exists():
            backend = task_backends[periodic.task.backend]
            assert isinstance(backend, DatabaseBackend)
            backend.enqueue_once(periodic.task.using(run_after=slot), periodic.key(slot))
        following = slot + periodic.interval
        next_due = following if next_due is None else min(next_due, following)
    return next_due
