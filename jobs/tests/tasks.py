"""Tasks the job tests enqueue (real workers import them with --tasks-module jobs.tests.tasks)."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.tasks import TaskContext

import jobs

RETRY_DELAY = timedelta(seconds=10)
HOLD_TIMEOUT = 30.0


@jobs.task
def echo(value: Any) -> Any:
    return value


@jobs.task(max_attempts=3, retry_delay=RETRY_DELAY, takes_context=True)
def succeed_on_attempt(context: TaskContext, attempt: int) -> int:
    """Fail like a flaky network until the given attempt, then succeed."""
    if context.attempt < attempt:
        raise ConnectionError(f"attempt {context.attempt}: the remote end is away")
    return context.attempt


@jobs.task(max_attempts=3, retry_delay=RETRY_DELAY)
def always_fail() -> None:
    raise RuntimeError("this never works")


@jobs.task(max_attempts=5)
def fail_permanently() -> None:
    raise jobs.PermanentError("the input can never be processed")


@jobs.task
def mark(label: str) -> None:
    """Does nothing: an enqueued `mark` row is the database effect of `record_effect`."""


@jobs.task(atomic=True, max_attempts=3)
def record_effect(label: str) -> None:
    mark.enqueue(label)


@jobs.task
def append_line(path: str, line: str) -> None:
    """Append a line (one write, O_APPEND: lines of several processes never interleave)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(descriptor, f"{line}\n".encode())
    finally:
        os.close(descriptor)


@jobs.task(atomic=True, max_attempts=3, takes_context=True)
def hold_then_record(context: TaskContext, directory: str, label: str) -> None:
    """Say it started (file `started-<attempt>`), wait for the file `release`, then record its effect."""
    folder = Path(directory)
    (folder / f"started-{context.attempt}").write_text(str(os.getpid()))
    deadline = time.monotonic() + HOLD_TIMEOUT
    for _ in range(int(HOLD_TIMEOUT / 0.02) + 1):
        if (folder / "release").exists() or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    mark.enqueue(label)
