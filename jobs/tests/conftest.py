"""Fixtures for the job tests: every task module imported, and a clock the test moves."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from django.utils.module_loading import autodiscover_modules

import jobs.tests.tasks  # noqa: F401 (registers the test tasks)
from jobs.worker import Worker


@pytest.fixture(autouse=True, scope="session")
def _every_task_known() -> None:
    autodiscover_modules("tasks")


class Clock:
    """A clock that stands still until moved."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(timezone.now() + timedelta(seconds=1))


@pytest.fixture
def make_worker(clock: Clock) -> Callable[..., Worker]:
    def make(name: str = "w1", **options: object) -> Worker:
        options.setdefault("scheduler", False)
        return Worker(worker_id=name, clock=clock, lease=timedelta(seconds=60), poll_interval=0.0, **options)  # type: ignore[arg-type]

    return make
