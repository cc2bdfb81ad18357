"""What operators see: jobs in the admin (dead ones retried from there) and the queue in /metrics."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from jobs import metrics
from jobs.models import Job
from jobs.tests import tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(make_user: Any) -> Client:
    client = Client()
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def dead_job(make_worker: Any) -> Job:
    result = tasks.fail_permanently.enqueue()
    make_worker().run_once()
    return Job.objects.get(pk=int(result.id))


def test_the_admin_lists_jobs_with_state_attempts_next_run_and_last_error(admin_client: Client, dead_job: Job) -> None:
    waiting = tasks.echo.enqueue("waiting")

    listing = admin_client.get("/admin/jobs/job/")
    dead_only = admin_client.get("/admin/jobs/job/?dead=1")

    page = listing.content.decode()
    assert {job.pk for job in listing.context["cl"].result_list} == {dead_job.pk, int(waiting.id)}
    assert "1 of 5" in page  # attempts of max_attempts
    assert "the input can never be processed" in page  # the last error's last line
    assert [job.pk for job in dead_only.context["cl"].result_list] == [dead_job.pk]
    detail = admin_client.get(f"/admin/jobs/job/{dead_job.pk}/change/").content.decode()
    assert "Traceback" in detail and "PermanentError" in detail


def test_dead_jobs_are_queued_again_from_the_admin(admin_client: Client, dead_job: Job) -> None:
    response = admin_client.post(
        "/admin/jobs/job/", {"action": "retry_jobs", "_selected_action": [dead_job.pk]}, follow=True
    )

    assert response.status_code == 200
    dead_job.refresh_from_db()
    assert (dead_job.state, dead_job.attempts) == (Job.State.QUEUED, 0)


def test_staff_who_may_only_view_jobs_cannot_retry_them(make_user: Any, dead_job: Job) -> None:
    from django.contrib.auth.models import Permission

    viewer = make_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_job"))
    client = Client()
    client.force_login(viewer)

    assert client.get("/admin/jobs/job/").status_code == 200
    client.post("/admin/jobs/job/", {"action": "retry_jobs", "_selected_action": [dead_job.pk]})

    dead_job.refresh_from_db()
    assert dead_job.state == Job.State.DEAD


def test_the_admin_cannot_add_or_edit_jobs(admin_client: Client, dead_job: Job) -> None:
    assert admin_client.get("/admin/jobs/job/add/").status_code == 403
    admin_client.post(f"/admin/jobs/job/{dead_job.pk}/change/", {"state": "succeeded"})
    dead_job.refresh_from_db()
    assert dead_job.state == Job.State.DEAD


def scrape(settings: Any) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    settings.DEBUG = True
    text = Client().get("/metrics").content.decode()
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_metrics_report_the_queue_by_state_and_the_oldest_due_jobs_age(settings: Any, dead_job: Job) -> None:
    now = timezone.now()
    Job.objects.create(task_path=tasks.echo.module_path, run_after=now - timedelta(minutes=10))
    Job.objects.create(task_path=tasks.echo.module_path, run_after=now - timedelta(minutes=1))
    Job.objects.create(task_path=tasks.echo.module_path, run_after=now + timedelta(minutes=5))
    Job.objects.create(task_path=tasks.echo.module_path, state=Job.State.RUNNING, lease_until=now)

    found = scrape(settings)

    states = {labels[0][1]: value for labels, value in found["chat_jobs"].items()}
    assert states == {"queued": 2, "scheduled": 1, "running": 1, "dead": 1}
    assert 600 <= found["chat_jobs_oldest_due_age_seconds"][()] < 660


def test_attempts_are_counted_by_task_and_outcome_and_timed(make_worker: Any, clock: Any) -> None:
    def count(outcome: str) -> float:
        return metrics.ATTEMPTS.labels("succeed_on_attempt", outcome)._value.get()

    before = {outcome: count(outcome) for outcome in metrics.OUTCOMES}
    durations = metrics.DURATION.labels("succeed_on_attempt")._sum.get()
    tasks.succeed_on_attempt.enqueue(2)
    worker = make_worker()

    worker.run_once()
    clock.advance(minutes=5)
    worker.run_once()

    assert count("retried") == before["retried"] + 1
    assert count("succeeded") == before["succeeded"] + 1
    assert metrics.DURATION.labels("succeed_on_attempt")._sum.get() > durations


def test_the_worker_serves_its_metrics_under_the_same_access_rule_and_an_open_healthz(settings: Any) -> None:
    import urllib.error
    import urllib.request

    settings.DEBUG = False
    settings.METRICS_TOKEN = "scrape-token"
    settings.METRICS_ALLOWED_NETWORKS = []
    alive = [True]
    server = metrics.serve("127.0.0.1:0", healthy=lambda: alive[0])
    base = f"http://127.0.0.1:{server.server_port}"

    def status(path: str, **headers: str) -> tuple[int, str]:
        request = urllib.request.Request(base + path, headers=headers)  # noqa: S310 (loopback)
        try:
            with urllib.request.urlopen(request, timeout=5) as reply:  # noqa: S310 (loopback)
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, ""

    try:
        refused = status("/metrics")
        scraped = status("/metrics", Authorization="Bearer scrape-token")
        healthy = status("/healthz")
        alive[0] = False
        stalled = status("/healthz")
        elsewhere = status("/admin/")
    finally:
        server.shutdown()
        server.server_close()

    assert refused[0] == 403
    assert scraped[0] == 200 and "chat_job_attempts_total" in scraped[1]
    assert (healthy[0], stalled[0], elsewhere[0]) == (200, 503, 404)
