"""Real worker processes on PostgreSQL: exactly once across workers, SIGKILL mid-job, SIGTERM, the scheduler.

Each test starts `manage.py run_worker` processes on the test database and
synchronises with them through files the test tasks write (`started-<n>`)
and wait for (`release`), never by sleeping; every wait is bounded.
"""

from __future__ import annotations

import signal
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from jobs.models import Job
from jobs.tests import tasks
from jobs.tests.worker_processes import STOP_TIMEOUT, WorkerProcesses, eventually, unused_port, worker_processes

pytestmark = [pytest.mark.services("postgres"), pytest.mark.django_db(transaction=True)]

JOB_TIMEOUT = 60.0


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[WorkerProcesses]:
    logs = tmp_path / "logs"
    logs.mkdir()
    with worker_processes(logs) as started:
        yield started


def states() -> Counter[str]:
    return Counter(Job.objects.values_list("state", flat=True))


def test_committed_jobs_run_exactly_once_across_two_workers_and_never_at_once(
    workers: WorkerProcesses, tmp_path: Path
) -> None:
    lines = tmp_path / "lines"
    # Nothing about running jobs needs Redis: point the workers at a port where none listens.
    no_redis = f"redis://127.0.0.1:{unused_port()}/0"
    pair = [workers.start(name, "--no-scheduler", "--max-jobs", "150", REDIS_URL=no_redis) for name in ("a", "b")]
    # Both poll before the jobs exist, so they race for every one of them.
    assert eventually(lambda: workers.logs().count("jobs.worker_started") == 2, within=JOB_TIMEOUT), workers.logs()
    for number in range(150):
        tasks.append_line.enqueue(str(lines), str(number))

    assert eventually(lambda: states() == {Job.State.SUCCEEDED: 150}, within=JOB_TIMEOUT), workers.logs()
    for process in pair:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=STOP_TIMEOUT)
        assert process.returncode == 0, workers.logs()

    assert Counter(lines.read_text().split()) == {str(number): 1 for number in range(150)}
    assert set(Job.objects.values_list("attempts", flat=True)) == {1}
    ran_by = Counter(worker for (worker,) in Job.objects.values_list("worker_ids", flat=True))
    assert len(ran_by) == 2, f"one worker ran every job: {ran_by}"


def test_a_worker_killed_mid_job_is_replaced_and_the_job_completes_once(
    workers: WorkerProcesses, tmp_path: Path
) -> None:
    result = tasks.hold_then_record.enqueue(str(tmp_path), "killed")
    lease = {"JOBS_LEASE_SECONDS": "1"}
    doomed = workers.start("doomed", "--no-scheduler", **lease)
    assert eventually((tmp_path / "started-1").exists, within=JOB_TIMEOUT), workers.logs()

    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=STOP_TIMEOUT)
    (tmp_path / "release").touch()
    workers.start("heir", "--no-scheduler", **lease)

    def finished() -> bool:
        return Job.objects.get(pk=int(result.id)).state == Job.State.SUCCEEDED

    assert eventually(finished, within=JOB_TIMEOUT), workers.logs()
    job = Job.objects.get(pk=int(result.id))
    assert job.attempts == 2 and len(set(job.worker_ids)) == 2
    assert "stopped renewing its lease during attempt 1" not in job.last_error  # cleared on success
    assert Job.objects.filter(task_path=tasks.mark.module_path, args=["killed"]).count() == 1


def test_sigterm_lets_the_job_in_hand_finish_and_takes_no_other(workers: WorkerProcesses, tmp_path: Path) -> None:
    held = tasks.hold_then_record.enqueue(str(tmp_path), "graceful")
    waiting = tasks.echo.using(run_after=timezone.now() + timedelta(seconds=1)).enqueue("next")
    worker = workers.start("graceful", "--no-scheduler")
    assert eventually((tmp_path / "started-1").exists, within=JOB_TIMEOUT), workers.logs()

    worker.send_signal(signal.SIGTERM)
    (tmp_path / "release").touch()  # the job can only finish after the signal
    worker.wait(timeout=JOB_TIMEOUT)

    assert worker.returncode == 0, workers.logs()
    job = Job.objects.get(pk=int(held.id))
    assert (job.state, job.attempts) == (Job.State.SUCCEEDED, 1)
    assert Job.objects.get(pk=int(waiting.id)).state == Job.State.QUEUED


def test_a_second_sigterm_stops_at_once_and_the_job_runs_again_later(workers: WorkerProcesses, tmp_path: Path) -> None:
    held = tasks.hold_then_record.enqueue(str(tmp_path), "impatient")
    lease = {"JOBS_LEASE_SECONDS": "1"}
    worker = workers.start("impatient", "--no-scheduler", **lease)
    assert eventually((tmp_path / "started-1").exists, within=JOB_TIMEOUT), workers.logs()

    # The first SIGTERM asks for a graceful stop; one that comes after it has been handled ends the process.
    def stopped_after_another_sigterm() -> bool:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
        return worker.poll() is not None

    assert eventually(stopped_after_another_sigterm, within=STOP_TIMEOUT, interval=0.2)
    worker.wait(timeout=STOP_TIMEOUT)
    assert worker.returncode == -signal.SIGTERM
    assert Job.objects.filter(task_path=tasks.mark.module_path, args=["impatient"]).count() == 0

    (tmp_path / "release").touch()
    workers.start("next", "--no-scheduler", **lease)
    assert eventually(lambda: Job.objects.get(pk=int(held.id)).state == Job.State.SUCCEEDED, within=JOB_TIMEOUT)
    assert Job.objects.filter(task_path=tasks.mark.module_path, args=["impatient"]).count() == 1


def test_a_worker_prunes_the_event_record_by_itself_and_reports_it(
    workers: WorkerProcesses, lobby: Any, settings: Any
) -> None:
    from rooms.events import Event

    Event.objects.update(created_at=timezone.now() - settings.EVENT_RETENTION - timedelta(days=1))
    assert Event.objects.exists()
    port = unused_port()

    workers.start("scheduler", JOBS_WORKER_LISTEN=f"127.0.0.1:{port}")

    assert eventually(lambda: not Event.objects.exists(), within=JOB_TIMEOUT), workers.logs()
    (job,) = Job.objects.filter(task_path="rooms.tasks.event_record_prune")
    assert job.key is not None and job.key.startswith("periodic:rooms.tasks.event_record_prune:")

    def fetch(path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return str(reply.read().decode())

    assert fetch("/healthz") == "ok\n"
    assert eventually(
        lambda: 'chat_job_attempts_total{outcome="succeeded",task="event_record_prune"} 1.0' in fetch("/metrics"),
        within=10,
    ), fetch("/metrics")
