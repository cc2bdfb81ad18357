"""The decorator that defines a task with its retry policy."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, overload

from django.tasks import DEFAULT_TASK_BACKEND_ALIAS, DEFAULT_TASK_QUEUE_NAME

from jobs.backend import JobTask


@overload
def task(function: Callable[..., Any], /) -> JobTask: ...


@overload
def task(
    *,
    max_attempts: int = ...,
    retry_delay: timedelta = ...,
    retry_delay_max: timedelta = ...,
    atomic: bool = ...,
    priority: int = ...,
    queue_name: str = ...,
    takes_context: bool = ...,
) -> Callable[[Callable[..., Any]], JobTask]: ...


def task(
    function: Callable[..., Any] | None = None,
    /,
    *,
    max_attempts: int = 5,
    retry_delay: timedelta = timedelta(seconds=30),
    retry_delay_max: timedelta = timedelta(hours=1),
    atomic: bool = False,
    priority: int = 0,
    queue_name: str = DEFAULT_TASK_QUEUE_NAME,
    takes_context: bool = False,
) -> JobTask | Callable[[Callable[..., Any]], JobTask]:
    """Make a module-level function a task of the job queue (`.enqueue(...)` writes its row).

    Up to `max_attempts` attempts; before attempt n+1 it waits `retry_delay`
    doubled n-1 times (at most `retry_delay_max`), less up to half at random.
    `atomic=True` commits the task's database writes together with its
    success, so they happen exactly once.
    """

    def wrap(func: Callable[..., Any]) -> JobTask:
        return JobTask(
            func=func,
            backend=DEFAULT_TASK_BACKEND_ALIAS,
            max_attempts=max_attempts,
            retry_delay=retry_delay,
            retry_delay_max=retry_delay_max,
            atomic=atomic,
            priority=priority,
            queue_name=queue_name,
            takes_context=takes_context,
        )

    return wrap(function) if function is not None else wrap
