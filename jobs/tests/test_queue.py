"""The job queue in one process: enqueueing in the caller's transaction, retries, dead letters, leases.

Workers here run in the test's process on a clock the test moves, so
backoffs and leases are exact and nothing sleeps. The same rules with real
worker processes (SIGKILL, SIGTERM, two workers at once) are in
test_worker_processes.py.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.tasks import TaskResultStatus, default_task_backend
from django.tasks.exceptions import InvalidTask

import jobs
from jobs.backend import JobTask
from jobs.models import Job
from jobs.tests import tasks
from jobs.tests.conftest import Clock

pytestmark = pytest.mark.django_db


def job_of(result: Any) -> Job:
    return Job.objects.get(pk=int(result.id))


def marks(label: str) -> int:
    return Job.objects.filter(task_path=tasks.mark.module_path, args=[label]).count()


# --- Enqueueing ------------------------------------------------------------------------------------


def test_a_job_enqueued_in_a_rolled_back_transaction_never_runs(make_worker: Any) -> None:
    class Abandon(Exception):
        pass

    with pytest.raises(Abandon), transaction.atomic():
        tasks.echo.enqueue("never")
        raise Abandon

    assert not Job.objects.exists()
    assert make_worker().run_once() is False


def test_a_job_commits_with_the_change_that_caused_it(make_worker: Any) -> None:
    with transaction.atomic():
        result = tasks.echo.enqueue({"hello": ["world"]})
        assert Job.objects.filter(pk=int(result.id)).exists()  # visible inside the caller's transaction

    assert result.status == TaskResultStatus.READY
    assert make_worker().run_once() is True
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == {"hello": ["world"]}


def test_a_committed_job_runs_exactly_once(make_worker: Any) -> None:
    result = tasks.echo.enqueue(1)
    first, second = make_worker("w1"), make_worker("w2")

    assert first.run_once() is True
    assert second.run_once() is False
    assert first.run_once() is False
    job = job_of(result)
    assert (job.state, job.attempts, job.worker_ids) == (Job.State.SUCCEEDED, 1, ["w1"])


def test_due_jobs_run_by_priority_then_age(make_worker: Any, clock: Clock) -> None:
    low = tasks.echo.enqueue("low")
    high = tasks.echo.using(priority=10).enqueue("high")
    later = tasks.echo.using(run_after=clock.now + timedelta(minutes=5)).enqueue("later")
    worker = make_worker()

    assert worker.run_once() and worker.run_once()
    assert not worker.run_once()  # `later` is not due yet
    assert job_of(high).finished_at <= job_of(low).finished_at  # type: ignore[operator]
    assert job_of(later).state == Job.State.QUEUED
    clock.advance(minutes=5)
    assert worker.run_once()
    assert job_of(later).state == Job.State.SUCCEEDED


def test_results_are_read_back_through_djangos_task_api() -> None:
    result = tasks.echo.enqueue("x")

    again = tasks.echo.get_result(result.id)
    assert (again.id, again.status, again.args) == (result.id, TaskResultStatus.READY, ["x"])
    assert default_task_backend.supports_get_result and default_task_backend.supports_defer


def test_tasks_must_be_module_level_functions() -> None:
    def local() -> None:
        pass

    with pytest.raises(InvalidTask):
        jobs.task(local)


def test_a_task_needs_at_least_one_attempt() -> None:
    with pytest.raises(InvalidTask):
        JobTask(func=tasks.echo.func, max_attempts=0)


# --- Retries and dead letters ---------------------------------------------------------------------


def test_a_transient_failure_is_retried_after_a_backoff_and_then_succeeds(make_worker: Any, clock: Clock) -> None:
    result = tasks.succeed_on_attempt.enqueue(2)
    worker = make_worker()
    failed_at = clock.now

    assert worker.run_once()
    job = job_of(result)
    assert (job.state, job.attempts, job.error_class) == (Job.State.QUEUED, 1, "builtins.ConnectionError")
    assert "the remote end is away" in job.last_error
    # Backoff: the task's retry_delay, less up to half at random.
    delay = job.run_after - failed_at
    assert tasks.RETRY_DELAY / 2 <= delay <= tasks.RETRY_DELAY
    assert not worker.run_once()  # not before its time

    clock.now = job.run_after
    assert worker.run_once()
    job.refresh_from_db()
    assert (job.state, job.attempts, job.return_value, job.last_error) == (Job.State.SUCCEEDED, 2, 2, "")


def test_the_backoff_doubles_with_each_attempt_up_to_its_cap() -> None:
    task = JobTask(
        func=tasks.echo.func, retry_delay=timedelta(seconds=10), retry_delay_max=timedelta(seconds=35), max_attempts=9
    )

    assert [task.retry_delay_for(n).total_seconds() for n in range(1, 6)] == [10, 20, 35, 35, 35]


def test_a_job_that_always_fails_is_dead_lettered_after_its_attempts(make_worker: Any, clock: Clock) -> None:
    result = tasks.always_fail.enqueue()
    worker = make_worker()

    for attempt in range(1, 4):
        assert worker.run_once(), f"attempt {attempt} did not run"
        clock.advance(hours=1)
    assert not worker.run_once()

    job = job_of(result)
    assert (job.state, job.attempts, job.max_attempts) == (Job.State.DEAD, 3, 3)
    assert job.finished_at is not None
    failed = tasks.always_fail.get_result(result.id)
    assert failed.status == TaskResultStatus.FAILED
    assert failed.errors[0].exception_class is RuntimeError
    assert "this never works" in failed.errors[0].traceback


def test_a_permanent_error_is_dead_lettered_at_once(make_worker: Any) -> None:
    result = tasks.fail_permanently.enqueue()

    assert make_worker().run_once()

    job = job_of(result)
    assert (job.state, job.attempts, job.error_class) == (Job.State.DEAD, 1, "jobs.errors.PermanentError")


def test_a_dead_job_queued_again_gets_fresh_attempts(make_worker: Any, clock: Clock) -> None:
    from jobs.services import job_retry

    result = tasks.fail_permanently.enqueue()
    done = tasks.echo.enqueue("done")
    worker = make_worker()
    worker.run_once()
    worker.run_once()

    assert job_retry(int(done.id)) is False  # only dead jobs
    assert job_retry(int(result.id)) is True
    job = job_of(result)
    assert (job.state, job.attempts, job.finished_at) == (Job.State.QUEUED, 0, None)
    assert worker.run_once()
    assert job_of(result).state == Job.State.DEAD


# --- Leases: a worker that dies or stalls ---------------------------------------------------------


def test_a_job_whose_worker_stopped_renewing_its_lease_runs_again(make_worker: Any, clock: Clock) -> None:
    result = tasks.record_effect.enqueue("once")
    dying, healthy = make_worker("dying"), make_worker("healthy")

    assert dying.claim() is not None  # ... and the process dies before running it
    assert healthy.run_once() is False  # the lease still holds
    clock.advance(seconds=61)
    assert healthy.run_once() is True

    job = job_of(result)
    assert (job.state, job.attempts, job.worker_ids) == (Job.State.SUCCEEDED, 2, ["dying", "healthy"])
    assert marks("once") == 1


def test_a_worker_that_lost_its_lease_cannot_commit_its_jobs_effects(make_worker: Any, clock: Clock) -> None:
    result = tasks.record_effect.enqueue("fenced")
    stalled, healthy = make_worker("stalled"), make_worker("healthy")
    claimed = stalled.claim()
    assert claimed is not None
    clock.advance(seconds=61)
    assert healthy.run_once()

    # The stalled worker wakes up and runs its attempt to the end: its writes roll back.
    assert stalled.execute(claimed) == "lost"

    assert marks("fenced") == 1
    job = job_of(result)
    assert (job.state, job.attempts, job.worker_ids) == (Job.State.SUCCEEDED, 2, ["stalled", "healthy"])


def test_a_job_whose_workers_keep_dying_ends_dead(make_worker: Any, clock: Clock) -> None:
    result = tasks.record_effect.enqueue("crashes")
    for attempt in range(3):
        assert make_worker(f"w{attempt}").claim() is not None
        clock.advance(seconds=61)

    assert make_worker("last").run_once() is False

    job = job_of(result)
    assert (job.state, job.attempts) == (Job.State.DEAD, 3)
    assert "stopped renewing its lease during attempt 3" in job.last_error
    assert marks("crashes") == 0


def test_jobs_of_unknown_tasks_wait_for_a_worker_that_knows_them(make_worker: Any) -> None:
    # Enqueued by newer code during a rolling deploy: this worker does not know the task.
    Job.objects.create(task_path="rooms.tasks.not_written_yet", max_attempts=3)

    assert make_worker().run_once() is False
    assert Job.objects.get().state == Job.State.QUEUED


def test_a_worker_takes_only_its_queues(make_worker: Any, settings: Any) -> None:
    settings.TASKS = {"default": {"BACKEND": "jobs.backend.DatabaseBackend", "QUEUES": ["default", "mail"]}}
    tasks.echo.using(queue_name="mail").enqueue("letter")

    assert make_worker(queues=["default"]).run_once() is False
    assert make_worker(queues=["mail"]).run_once() is True


def test_run_stops_when_asked_and_when_idle(make_worker: Any) -> None:
    for value in range(3):
        tasks.echo.enqueue(value)
    worker = make_worker()

    assert worker.run(max_jobs=2) == 2
    assert worker.run(exit_when_idle=True) == 1
    worker.request_stop()
    assert worker.run() == 0


@pytest.mark.django_db(transaction=True)
def test_the_worker_rides_out_a_database_outage(make_worker: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from django.db import OperationalError

    result = tasks.echo.enqueue("after the outage")
    worker = make_worker()
    real_claim = worker.claim
    outages = iter([OperationalError("server closed the connection unexpectedly")])

    def claim_after_an_outage() -> Any:
        for error in outages:
            raise error
        return real_claim()

    monkeypatch.setattr(worker, "claim", claim_after_an_outage)

    assert worker.run(max_jobs=1) == 1
    assert job_of(result).state == Job.State.SUCCEEDED
