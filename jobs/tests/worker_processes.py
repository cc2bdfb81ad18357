"""Real `run_worker` processes for the job tests: started on the test database, always killed again."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import quote

PROJECT_DIR = Path(__file__).resolve().parents[2]
STOP_TIMEOUT = 20.0


def live_database_url() -> str:
    """Return a postgres:// URL for the database this test runs in (pytest-django's test_<name>)."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    user = quote(str(db.get("USER") or ""), safe="")
    password = quote(str(db.get("PASSWORD") or ""), safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    return (
        f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{quote(str(db['NAME']), safe='')}"
    )


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def eventually(predicate: Callable[[], bool], within: float, interval: float = 0.05) -> bool:
    """Wait until `predicate()` holds, at most `within` seconds; return whether it did."""
    deadline = time.monotonic() + within
    for _ in range(int(within / interval) + 2):
        if predicate():
            return True
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    return predicate()


class WorkerProcesses:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, *arguments: str, **environment: str) -> subprocess.Popen[bytes]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
        env.update(
            DJANGO_SETTINGS_MODULE="chatproject.settings",
            DATABASE_URL=live_database_url(),
            DATABASE_POOL_MIN="1",
            DEBUG="1",
            TESTING="1",
            PYTHONUNBUFFERED="1",
            JOBS_POLL_SECONDS="0.05",
            JOBS_WORKER_LISTEN="",
        )
        env.update(environment)
        with (self.log_dir / f"worker-{name}.log").open("wb") as log:
            process = subprocess.Popen(  # noqa: S603 (our interpreter, fixed arguments)
                [sys.executable, "manage.py", "run_worker", "--tasks-module", "jobs.tests.tasks", *arguments],
                cwd=PROJECT_DIR,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name} ---\n{path.read_text()[-3000:]}" for path in self.log_dir.glob("worker-*.log")
        )

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=STOP_TIMEOUT)


@contextmanager
def worker_processes(log_dir: Path) -> Iterator[WorkerProcesses]:
    workers = WorkerProcesses(log_dir)
    try:
        yield workers
    finally:
        workers.close()
