"""One Daphne process run as in production (the Makefile's DAPHNE_ARGS), on loopback, always killed again.

On SQLite (a fresh file) by default; `database_url`/`redis_url` put it on the
test's PostgreSQL database and a Redis instead.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from realtime.tests.realtime_support import HOST, PASSWORD, PROJECT_DIR, free_port

START_TIMEOUT = 45.0


def production_daphne_args() -> list[str]:
    """The Daphne options `make run` uses (DAPHNE_ARGS in the Makefile)."""
    makefile = (PROJECT_DIR / "Makefile").read_text()
    match = re.search(r"^DAPHNE_ARGS \?= (.+)$", makefile, re.MULTILINE)
    assert match, "DAPHNE_ARGS not found in the Makefile"
    return shlex.split(match.group(1))


class DaphneProcess:
    def __init__(
        self,
        workdir: Path,
        *,
        database_url: str = "",
        redis_url: str = "",
        application: str = "chatproject.asgi:application",
        **extra_env: str,
    ) -> None:
        self.workdir = workdir
        self.application = application
        self.log_path = workdir / f"daphne-{uuid.uuid4().hex[:8]}.log"
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.ws_url = f"ws://{HOST}:{self.port}/ws/"
        prefix = f"dp{uuid.uuid4().hex[:10]}"
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PYTEST_", "CHAT_TEST_", "REALTIME_")) and key != "SECRET_KEY"
        }
        self.env.update(
            DJANGO_SETTINGS_MODULE="chatproject.settings",
            SQLITE_PATH=str(workdir / "db.sqlite3"),
            # Empty, not absent: a developer's .env must not point this server elsewhere.
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            CHANNEL_PREFIX=prefix,
            CACHE_PREFIX=prefix,
            DEBUG="1",
            TESTING="1",
            RATELIMIT_ENABLE="0",
            ALLOWED_HOSTS="127.0.0.1,localhost",
            PYTHONUNBUFFERED="1",
            **extra_env,
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> DaphneProcess:
        if not self.env["DATABASE_URL"]:
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
                cwd=PROJECT_DIR,
                env=self.env,
                check=True,
                timeout=120,
            )
        endpoint = f"tcp:port={self.port}:interface={HOST}:backlog=1024"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 (our own interpreter, fixed arguments)
                [
                    sys.executable,
                    "-m",
                    "daphne",
                    "-e",
                    endpoint,
                    *production_daphne_args(),
                    self.application,
                ],
                cwd=PROJECT_DIR,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        for _ in range(int(START_TIMEOUT / 0.1) + 1):
            if self.process.poll() is not None:
                raise AssertionError(f"Daphne exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2):  # noqa: S310 (loopback)
                    return self
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        raise AssertionError(f"Daphne did not answer /healthz in {START_TIMEOUT} s:\n{self.log_text()}")

    def access_token(self) -> str:
        """Register a new user over REST and return an access token."""
        name = "u" + uuid.uuid4().hex[:10]
        body = json.dumps({"username": name, "email": f"{name}@example.com", "password": PASSWORD}).encode()
        request = urllib.request.Request(  # noqa: S310 (loopback test server)
            f"{self.url}/api/v1/auth/register/", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310 (loopback test server)
            return str(json.load(response)["access"])

    def post(self, path: str, token: str, body: dict[str, object]) -> dict[str, object]:
        request = urllib.request.Request(  # noqa: S310 (loopback test server)
            f"{self.url}/api/v1/{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310 (loopback test server)
            reply: dict[str, object] = json.load(response)
            return reply

    def terminate(self, within: float) -> float | None:
        """Send SIGTERM; return the seconds it took to exit, or None if it was still running after `within`."""
        assert self.process is not None
        began = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            return None
        return time.monotonic() - began

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
