"""Job queue metrics: the queue read from the table at scrape time, and each worker's attempts.

Every process that serves /metrics reports the whole queue (`chat_jobs`,
`chat_jobs_oldest_due_age_seconds`): dashboards take the max over targets,
not the sum. Attempts, their duration and their wait are counted by the
worker that ran them, which serves them on JOBS_WORKER_LISTEN under the
same access rule as /metrics, beside an open /healthz for probes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.db import connection
from django.utils import timezone
from prometheus_client import REGISTRY, Counter, Histogram, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.metrics import scrape_allowed_for

logger = logging.getLogger(__name__)

OUTCOMES = ("succeeded", "retried", "dead", "lost")

ATTEMPTS = Counter(
    "chat_job_attempts_total",
    "Job attempts finished, by task and outcome (succeeded; retried: failed, will run again;"
    " dead: failed for good; lost: its worker died or lost the lease), counted by the worker.",
    ["task", "outcome"],
)
DURATION = Histogram(
    "chat_job_duration_seconds",
    "How long job attempts ran, by task.",
    ["task"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0),
)
WAIT = Histogram(
    "chat_job_wait_seconds",
    "From a job being due to a worker starting it: the queue's latency.",
    buckets=(0.1, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0, 1800.0),
)


def attempt_finished(task: str, outcome: str) -> None:
    ATTEMPTS.labels(task, outcome).inc()


def attempt_ran(task: str, seconds: float) -> None:
    DURATION.labels(task).observe(seconds)


def job_started_after(seconds: float) -> None:
    WAIT.observe(seconds)


def tasks_expected(names: Iterable[str]) -> None:
    """Create each task's series at zero, so rate() sees the first attempt."""
    for name in names:
        for outcome in OUTCOMES:
            ATTEMPTS.labels(name, outcome)


class JobQueueCollector(Collector):
    """Count jobs by state and measure how long the oldest due job has waited, at scrape time."""

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        by_state, oldest = self._families()
        try:
            counts, oldest_age = queue_snapshot()
        except Exception:
            # A scrape must not fail with the database (or outside a request, in tests):
            # the families stay without samples, and the alert on absent samples fires.
            logger.debug("job queue metrics unavailable", exc_info=True)
            return [by_state, oldest]
        for state, count in counts.items():
            by_state.add_metric([state], count)
        oldest.add_metric([], oldest_age)
        return [by_state, oldest]

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "chat_jobs",
                "Jobs by state: queued (due now), scheduled (waiting for their time or a retry),"
                " running, dead (failed for good, until retried or deleted in the admin).",
                labels=["state"],
            ),
            GaugeMetricFamily(
                "chat_jobs_oldest_due_age_seconds",
                "How long the oldest due job has been waiting for a worker (0 when none is due).",
            ),
        )


def queue_snapshot() -> tuple[dict[str, int], float]:
    """Return job counts by state (queued, scheduled, running, dead) and the oldest due job's age."""
    from django.db.models import Count, Min, Q

    from jobs.models import Job

    now = timezone.now()
    due = Q(state=Job.State.QUEUED, run_after__lte=now)
    totals = Job.objects.filter(state__in=(Job.State.QUEUED, Job.State.RUNNING, Job.State.DEAD)).aggregate(
        queued=Count("id", filter=due),
        scheduled=Count("id", filter=Q(state=Job.State.QUEUED, run_after__gt=now)),
        running=Count("id", filter=Q(state=Job.State.RUNNING)),
        dead=Count("id", filter=Q(state=Job.State.DEAD)),
        oldest=Min("run_after", filter=due),
    )
    oldest = totals.pop("oldest")
    age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    return {state: int(count) for state, count in totals.items()}, age


_installed = False


def install() -> None:
    """Report the queue on this process's /metrics (once)."""
    global _installed
    if not _installed:
        REGISTRY.register(JobQueueCollector())
        _installed = True


# --- The worker's own listener -----------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _worker_app(healthy: Callable[[], bool]) -> Any:
    metrics_app = make_wsgi_app(REGISTRY)

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            # Open like the web's /healthz: it tells only whether the worker's loop is turning.
            ok = healthy()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"ok\n" if ok else b"stalled\n"]
        if path != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"Not found\n"]
        if not scrape_allowed_for(environ):
            start_response("403 Forbidden", [("Content-Type", "text/plain")])
            return [b"Forbidden\n"]
        try:
            return metrics_app(environ, start_response)  # type: ignore[no-any-return]
        finally:
            # The queue collector queried on this listener's thread: give its connection back.
            connection.close()

    return app


def serve(listen: str, healthy: Callable[[], bool] = lambda: True) -> WSGIServer:
    """Answer /metrics and /healthz over HTTP on `host:port` (IPv4), in a daemon thread."""
    host, _, port = listen.rpartition(":")
    server = make_server(host or "127.0.0.1", int(port), _worker_app(healthy), handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="job-metrics", daemon=True).start()
    return server
