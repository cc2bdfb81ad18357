"""A database backend for Django's tasks framework (`django.tasks`), with a retry policy per task.

Enqueueing writes one `Job` row on the caller's connection: inside
`transaction.atomic()` the job commits or rolls back with the change that
caused it, so there is nothing to `on_commit` and nothing to lose between
the two. `run_worker` runs the rows (jobs.worker).
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.tasks import Task, TaskResult, TaskResultStatus
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.base import TaskError
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued
from django.utils import timezone
from django.utils.json import normalize_json

if TYPE_CHECKING:
    from jobs.models import Job

# Every task the backend has seen defined, by module path: a worker claims
# only jobs whose task it knows, so a job enqueued by newer code waits for a
# worker running that code (a rolling deploy) instead of failing.
_tasks: dict[str, JobTask] = {}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobTask(Task):
    """A task with its retry policy: `max_attempts` in all, waiting `retry_delay` doubled each time.

    `atomic` runs the task and the record of its success in one transaction:
    its database writes then happen exactly once even if a worker dies or
    two workers race for it (docs/jobs.md). Leave it off for long tasks that
    commit in batches, which must instead be idempotent.
    """

    max_attempts: int = 5
    retry_delay: timedelta = timedelta(seconds=30)
    retry_delay_max: timedelta = timedelta(hours=1)
    atomic: bool = False

    def __post_init__(self) -> None:
        # Zero-argument super() fails in a slotted dataclass.
        super(JobTask, self).__post_init__()
        if self.max_attempts < 1:
            raise InvalidTask("max_attempts must be at least 1.")
        _tasks.setdefault(self.module_path, self)

    def retry_delay_for(self, attempt: int) -> timedelta:
        """Return the backoff before the attempt after `attempt` (1-based), before jitter."""
        return min(self.retry_delay * 2 ** max(0, attempt - 1), self.retry_delay_max)


def known_task(path: str) -> JobTask | None:
    return _tasks.get(path)


def known_task_paths() -> list[str]:
    return sorted(_tasks)


_STATUS = {
    "queued": TaskResultStatus.READY,
    "running": TaskResultStatus.RUNNING,
    "succeeded": TaskResultStatus.SUCCESSFUL,
    "dead": TaskResultStatus.FAILED,
}


def task_result_of(job: Job, task: Task) -> TaskResult:
    """Return Django's view of a job row."""
    result: TaskResult[Any, Any] = TaskResult(
        task=task,
        id=str(job.pk),
        status=_STATUS[job.state],
        enqueued_at=job.enqueued_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        last_attempted_at=job.started_at,
        args=job.args,
        kwargs=job.kwargs,
        backend=task.backend,
        errors=[TaskError(exception_class_path=job.error_class, traceback=job.last_error)] if job.error_class else [],
        worker_ids=list(job.worker_ids),
    )
    object.__setattr__(result, "_return_value", job.return_value)
    return result


class DatabaseBackend(BaseTaskBackend):
    task_class = JobTask
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def validate_task(self, task: Task) -> None:
        super().validate_task(task)
        if not isinstance(task, JobTask):
            raise InvalidTask("Define tasks for the database backend with jobs.task or django.tasks.task.")

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        job = self._insert(task, args, kwargs)
        result = task_result_of(job, task)
        task_enqueued.send(type(self), task_result=result)
        return result

    def enqueue_once(self, task: Task, key: str, args: Any = (), kwargs: Any = None) -> bool:
        """Enqueue unless a job with `key` exists (finished or not); return whether this call wrote it."""
        try:
            with transaction.atomic():
                self._insert(task, args, kwargs or {}, key=key)
        except IntegrityError:
            return False
        return True

    def _insert(self, task: Task, args: Any, kwargs: Any, *, key: str | None = None) -> Job:
        from jobs.models import Job

        self.validate_task(task)
        assert isinstance(task, JobTask)
        now = timezone.now()
        return Job.objects.create(
            task_path=task.module_path,
            queue_name=task.queue_name,
            priority=task.priority,
            args=normalize_json(list(args)),
            kwargs=normalize_json(dict(kwargs)),
            key=key,
            max_attempts=task.max_attempts,
            run_after=task.run_after or now,
            enqueued_at=now,
        )

    def get_result(self, result_id: str) -> TaskResult:
        from jobs.models import Job

        try:
            job = Job.objects.get(pk=int(result_id))
        except (ValueError, Job.DoesNotExist):
            raise TaskResultDoesNotExist(result_id) from None
        task = known_task(job.task_path)
        if task is None:
            from django.utils.module_loading import import_string

            task = import_string(job.task_path)
        return task_result_of(job, task)
