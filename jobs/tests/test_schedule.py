"""Periodic jobs: one job per slot whoever schedules it, no overlap, and the event record pruned on time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from jobs import schedule
from jobs.backend import JobTask
from jobs.models import Job
from jobs.tests import tasks
from jobs.tests.conftest import Clock
from rooms import tasks as room_tasks

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)


@pytest.fixture
def only(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Replace the registered periodic jobs with the given ones for one test."""

    def register(interval: timedelta, task: JobTask) -> schedule.Periodic:
        monkeypatch.setattr(schedule, "_periodic", {})
        schedule.every(interval, task)
        return schedule.periodic_jobs()[0]

    return register


def periodic_rows(task: JobTask) -> list[Job]:
    return list(Job.objects.filter(task_path=task.module_path, key__startswith="periodic:").order_by("id"))


def test_registering_a_periodic_job_is_one_line_and_the_housekeeping_is_registered() -> None:
    registered = {periodic.name: periodic.interval for periodic in schedule.periodic_jobs()}

    assert registered[room_tasks.event_record_prune.module_path] == HOUR
    assert "jobs.tasks.finished_jobs_prune" in registered


def test_each_slot_is_enqueued_once_however_many_schedulers_ask(only: Any) -> None:
    periodic = only(HOUR, tasks.echo)
    at = datetime(2030, 1, 1, 10, 15, tzinfo=UTC)

    next_due = schedule.schedule_due(at)
    for _ in range(3):  # other workers, the same slot
        schedule.schedule_due(at + timedelta(minutes=20))

    (job,) = periodic_rows(tasks.echo)
    assert job.key == periodic.key(datetime(2030, 1, 1, 10, tzinfo=UTC))
    assert job.run_after == datetime(2030, 1, 1, 10, tzinfo=UTC)
    assert next_due == datetime(2030, 1, 1, 11, tzinfo=UTC)


def test_a_new_slot_waits_while_the_previous_run_is_unfinished(only: Any) -> None:
    only(HOUR, tasks.echo)
    at = datetime(2030, 1, 1, 10, 15, tzinfo=UTC)
    schedule.schedule_due(at)

    schedule.schedule_due(at + HOUR)  # the 10:00 run is still queued: no overlap
    assert len(periodic_rows(tasks.echo)) == 1

    Job.objects.update(state=Job.State.SUCCEEDED)
    schedule.schedule_due(at + HOUR)
    assert [job.run_after.hour for job in periodic_rows(tasks.echo)] == [10, 11]


def test_intervals_under_a_second_are_refused() -> None:
    with pytest.raises(ValueError, match="once a second"):
        schedule.every(timedelta(milliseconds=10), tasks.echo)


def test_the_worker_prunes_the_event_record_on_schedule(
    only: Any, make_worker: Any, clock: Clock, lobby: Any, settings: Any
) -> None:
    from rooms.events import Event

    only(settings.EVENT_PRUNE_INTERVAL, room_tasks.event_record_prune)
    Event.objects.update(created_at=timezone.now() - settings.EVENT_RETENTION - timedelta(days=1))
    old = Event.objects.count()
    assert old > 0
    worker = make_worker(scheduler=True)

    assert worker.run(exit_when_idle=True) == 1
    assert not Event.objects.exists()
    assert periodic_rows(room_tasks.event_record_prune)[0].return_value == old

    clock.advance(minutes=1)  # same slot: nothing new
    assert worker.run(exit_when_idle=True) == 0
    clock.now = schedule.periodic_jobs()[0].slot_start(clock.now) + settings.EVENT_PRUNE_INTERVAL
    assert worker.run(exit_when_idle=True) == 1
    assert [job.state for job in periodic_rows(room_tasks.event_record_prune)] == [Job.State.SUCCEEDED] * 2


def test_succeeded_jobs_are_forgotten_after_a_while_and_dead_ones_kept(make_worker: Any, settings: Any) -> None:
    from jobs.tasks import finished_jobs_prune

    settings.JOBS_KEEP_SUCCEEDED_DAYS = 7
    old = timezone.now() - timedelta(days=8)
    Job.objects.create(task_path=tasks.echo.module_path, state=Job.State.SUCCEEDED, finished_at=old)
    recent = Job.objects.create(task_path=tasks.echo.module_path, state=Job.State.SUCCEEDED, finished_at=timezone.now())
    dead = Job.objects.create(task_path=tasks.echo.module_path, state=Job.State.DEAD, finished_at=old)

    assert finished_jobs_prune.call() == 1
    assert set(Job.objects.values_list("id", flat=True)) == {recent.pk, dead.pk}
