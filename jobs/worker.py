"""The worker: claims due jobs, runs them, retries them with backoff, and schedules periodic jobs.

How it keeps "nothing lost, nothing doubled" (docs/jobs.md):

- **Claiming** is one short transaction: `SELECT … FOR UPDATE SKIP LOCKED`
  on PostgreSQL (SQLite's single writer serialises it) picks a due job and
  marks it `running` for this worker until `lease_until`. Two workers never
  claim the same attempt.
- **The lease** is renewed by a heartbeat thread while the task runs. A
  worker that dies (SIGKILL, a lost machine) stops renewing it, and once it
  has lapsed any worker claims the job again as a new attempt.
- **Finishing** is fenced: the worker records the outcome only if the row
  is still its own attempt (same worker, same attempt number, still
  running). A worker that lost its lease gets nothing written; with an
  `atomic` task its database writes roll back with it.
- **Failures** are retried after an exponential backoff with jitter, up to
  the task's `max_attempts`; then (or at once for `PermanentError`) the job
  is `dead`, shown in the admin and counted in the metrics.
"""

from __future__ import annotations

import dataclasses
import os
import random
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.db.models import QuerySet
from django.tasks import TaskContext
from django.tasks.signals import task_finished, task_started
from django.utils import timezone
from django.utils.json import normalize_json

from jobs import metrics, schedule
from jobs.backend import JobTask, known_task, known_task_paths, task_result_of
from jobs.errors import PermanentError
from jobs.models import Job

log = structlog.get_logger("chat.jobs")

ERROR_TEXT_MAX = 10_000
# How many stale jobs one claim may dead-letter before it looks for a live one.
CLAIM_SWEEP_MAX = 20


class LeaseLost(Exception):
    """The job is no longer this worker's attempt: another worker claimed it after the lease lapsed."""


class _TaskFailed(Exception):
    """The task itself raised (as opposed to the worker failing to record its outcome)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


@dataclasses.dataclass
class Claimed:
    job: Job
    task: JobTask

    @property
    def attempt(self) -> int:
        return self.job.attempts


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Runs jobs one at a time until asked to stop (`request_stop`, SIGTERM in `run_worker`)."""

    def __init__(
        self,
        *,
        worker_id: str | None = None,
        queues: Iterable[str] | None = None,
        lease: timedelta | None = None,
        poll_interval: float | None = None,
        clock: Callable[[], datetime] = timezone.now,
        scheduler: bool = True,
    ) -> None:
        self.worker_id = worker_id or default_worker_id()
        self.queues = sorted(queues) if queues else sorted(settings.TASKS["default"].get("QUEUES", ["default"]))
        self.lease = lease or timedelta(seconds=settings.JOBS_LEASE_SECONDS)
        self.poll_interval = settings.JOBS_POLL_SECONDS if poll_interval is None else poll_interval
        self.clock = clock
        self.scheduler = scheduler
        self._stop = False
        self._next_schedule: datetime | None = None
        self._last_beat = time.monotonic()

    # --- Stopping --------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Finish the job in hand, then return from `run` (safe to call from a signal handler)."""
        self._stop = True

    @property
    def stopping(self) -> bool:
        return self._stop

    def beat(self) -> None:
        """Note that the worker is alive: its loop turned, or the job in hand renewed its lease."""
        self._last_beat = time.monotonic()

    def healthy(self) -> bool:
        """Whether the loop or a running job's heartbeat showed life within a lease (the liveness probe)."""
        return time.monotonic() - self._last_beat < max(self.lease.total_seconds(), 3 * self.poll_interval, 10.0)

    def _pause(self, seconds: float) -> None:
        # In slices, so a stop request is seen within a tenth of a second.
        deadline = time.monotonic() + seconds
        for _ in range(int(seconds / 0.1) + 1):
            self.beat()
            if self._stop or time.monotonic() >= deadline:
                return
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    # --- The loop ---------------------------------------------------------------------------

    def run(self, *, max_jobs: int | None = None, exit_when_idle: bool = False) -> int:
        """Run jobs until stopped (or `max_jobs` ran, or none is due with `exit_when_idle`); return how many ran."""
        log.info("jobs.worker_started", worker_id=self.worker_id, queues=self.queues, tasks=len(known_task_paths()))
        ran = 0
        failures = 0
        while not self._stop:
            self.beat()
            _tidy_connection()
            try:
                self.schedule_if_due()
                did_run = self.run_once()
                failures = 0
            except DatabaseError as error:
                # The database is away (restart, failover): nothing is lost, the rows wait.
                failures += 1
                log.warning("jobs.database_unavailable", worker_id=self.worker_id, error=str(error))
                _tidy_connection(close=True)
                self._pause(min(30.0, 0.5 * 2 ** min(failures, 6)))
                continue
            finally:
                _tidy_connection()
            if did_run:
                ran += 1
                if max_jobs is not None and ran >= max_jobs:
                    break
                continue
            if exit_when_idle:
                break
            self._pause(self.poll_interval)
        log.info("jobs.worker_stopped", worker_id=self.worker_id, jobs_run=ran)
        return ran

    def run_once(self) -> bool:
        """Claim one due job and run it; return whether there was one."""
        claimed = self.claim()
        if claimed is None:
            return False
        self.execute(claimed)
        return True

    def schedule_if_due(self) -> None:
        if not self.scheduler:
            return
        now = self.clock()
        if self._next_schedule is not None and now < self._next_schedule:
            return
        self._next_schedule = schedule.schedule_due(now)

    # --- Claiming ---------------------------------------------------------------------------

    def claim(self) -> Claimed | None:
        """Take the next due job (or one whose worker's lease lapsed) as a new attempt of this worker."""
        for _ in range(CLAIM_SWEEP_MAX):
            now = self.clock()
            candidates = Job.objects.filter(task_path__in=known_task_paths(), queue_name__in=self.queues)
            with transaction.atomic():
                job = (
                    candidates.filter(state=Job.State.RUNNING, lease_until__lt=now)
                    .select_for_update(skip_locked=True)
                    .order_by("lease_until")
                    .first()
                )
                if job is None:
                    job = (
                        candidates.filter(state=Job.State.QUEUED, run_after__lte=now)
                        .select_for_update(skip_locked=True)
                        .order_by("-priority", "run_after", "id")
                        .first()
                    )
                if job is None:
                    return None
                task = known_task(job.task_path)
                assert task is not None  # the query asked for known tasks only
                if job.state == Job.State.RUNNING:
                    # Its worker died or stalled mid-attempt: that attempt counts as failed.
                    job.error_class = ""
                    job.last_error = (
                        f"Worker {job.claimed_by} stopped renewing its lease during attempt {job.attempts}."
                    )
                    log.warning(
                        "jobs.lease_lapsed", job_id=job.pk, task=task.name, attempt=job.attempts, worker=job.claimed_by
                    )
                    metrics.attempt_finished(task.name, "lost")
                    if job.attempts >= job.max_attempts:
                        self._bury(job, now)
                        continue
                else:
                    metrics.job_started_after(max(0.0, (now - job.run_after).total_seconds()))
                job.state = Job.State.RUNNING
                job.attempts += 1
                job.claimed_by = self.worker_id
                job.worker_ids = [*job.worker_ids, self.worker_id]
                job.lease_until = now + self.lease
                job.started_at = now
                job.save(
                    update_fields=[
                        "state",
                        "attempts",
                        "claimed_by",
                        "worker_ids",
                        "lease_until",
                        "started_at",
                        "error_class",
                        "last_error",
                    ]
                )
            return Claimed(job=job, task=task)
        return None

    def _bury(self, job: Job, now: datetime) -> None:
        job.state = Job.State.DEAD
        job.finished_at = now
        job.lease_until = None
        job.save(update_fields=["state", "finished_at", "lease_until", "error_class", "last_error"])
        log.error("jobs.dead", job_id=job.pk, task=job.task_name, attempts=job.attempts, error=job.last_error[:200])

    # --- Running ----------------------------------------------------------------------------

    def execute(self, claimed: Claimed) -> str:
        """Run a claimed attempt and record its outcome: succeeded, retried, dead or lost."""
        job, task = claimed.job, claimed.task
        task_started.send(type(task.get_backend()), task_result=task_result_of(job, task))
        heartbeat = _Heartbeat(self, claimed)
        heartbeat.start()
        started = time.perf_counter()
        try:
            # A DatabaseError outside the task's own call means the outcome could not be
            # written: it propagates to `run`, the lease lapses, and another attempt runs.
            if task.atomic:
                with transaction.atomic():
                    value = self._call(claimed)
                    self._record_success(claimed, value)
            else:
                value = self._call(claimed)
                self._record_success(claimed, value)
            outcome = "succeeded"
        except LeaseLost:
            outcome = "lost"
            log.warning("jobs.lease_lost", job_id=job.pk, task=task.name, attempt=claimed.attempt)
        except _TaskFailed as failed:
            outcome = self._record_failure(claimed, failed.error)
        finally:
            heartbeat.stop()
            metrics.attempt_ran(task.name, time.perf_counter() - started)
        if outcome != "lost":
            # A lost attempt was counted by the worker that claimed the job after the lease lapsed.
            metrics.attempt_finished(task.name, outcome)
        if outcome in ("succeeded", "dead"):
            job.refresh_from_db()
            task_finished.send(type(task.get_backend()), task_result=task_result_of(job, task))
        return outcome

    def _call(self, claimed: Claimed) -> object:
        job, task = claimed.job, claimed.task
        try:
            if task.takes_context:
                context: TaskContext[Any, Any] = TaskContext(task_result=task_result_of(job, task))
                value = task.call(context, *job.args, **job.kwargs)
            else:
                value = task.call(*job.args, **job.kwargs)
            return normalize_json(value)
        except Exception as error:
            raise _TaskFailed(error) from error

    def _mine(self, claimed: Claimed) -> QuerySet[Job]:
        return Job.objects.filter(
            pk=claimed.job.pk,
            state=Job.State.RUNNING,
            attempts=claimed.attempt,
            claimed_by=self.worker_id,
        )

    def _record_success(self, claimed: Claimed, value: object) -> None:
        now = self.clock()
        updated = self._mine(claimed).update(
            state=Job.State.SUCCEEDED,
            finished_at=now,
            lease_until=None,
            return_value=value,
            error_class="",
            last_error="",
        )
        if updated != 1:
            raise LeaseLost

    def _record_failure(self, claimed: Claimed, error: Exception) -> str:
        job, task = claimed.job, claimed.task
        now = self.clock()
        permanent = isinstance(error, PermanentError)
        fields: dict[str, object] = {
            "error_class": f"{type(error).__module__}.{type(error).__qualname__}",
            "last_error": "".join(traceback.format_exception(error))[-ERROR_TEXT_MAX:],
            "lease_until": None,
        }
        if not permanent and claimed.attempt < job.max_attempts:
            delay = task.retry_delay_for(claimed.attempt) * (0.5 + random.random() / 2)  # noqa: S311 (jitter)
            fields.update(state=Job.State.QUEUED, run_after=now + delay, claimed_by="")
            outcome = "retried"
        else:
            fields.update(state=Job.State.DEAD, finished_at=now)
            outcome = "dead"
        if self._mine(claimed).update(**fields) != 1:
            log.warning("jobs.lease_lost", job_id=job.pk, task=task.name, attempt=claimed.attempt)
            return "lost"
        event = "jobs.retry_scheduled" if outcome == "retried" else "jobs.dead"
        (log.warning if outcome == "retried" else log.error)(
            event,
            job_id=job.pk,
            task=task.name,
            attempt=claimed.attempt,
            max_attempts=job.max_attempts,
            error=fields["error_class"],
            run_after=str(fields.get("run_after", "")),
        )
        return outcome


def _tidy_connection(*, close: bool = False) -> None:
    """Between jobs, as between requests: return the connection to the pool, drop a broken one.

    Never inside a transaction the caller opened (a test running the worker in its own).
    """
    if connection.in_atomic_block:
        return
    if close:
        connection.close()
    else:
        close_old_connections()


class _Heartbeat(threading.Thread):
    """Renews a running attempt's lease every third of its length, on its own database connection."""

    def __init__(self, worker: Worker, claimed: Claimed) -> None:
        super().__init__(name=f"job-heartbeat-{claimed.job.pk}", daemon=True)
        self.worker = worker
        self.claimed = claimed
        self._done = threading.Event()

    def run(self) -> None:
        every = max(0.05, self.worker.lease.total_seconds() / 3)
        try:
            while not self._done.wait(every):
                try:
                    renewed = self.worker._mine(self.claimed).update(
                        lease_until=self.worker.clock() + self.worker.lease
                    )
                except DatabaseError as error:
                    log.warning("jobs.heartbeat_failed", job_id=self.claimed.job.pk, error=str(error))
                    connection.close()
                    continue
                if renewed != 1:
                    return  # another worker has it now; this attempt's outcome will not be written
                self.worker.beat()
        finally:
            connection.close()

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=10)
