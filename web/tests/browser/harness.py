"""End-to-end harness: a real Daphne server and Debian's Chromium driven by Playwright.

The server runs as a subprocess on a free port with its own temporary SQLite
database and the in-memory channel layer: these tests check the web UI, not
the backends. Tests make their own uniquely named people and rooms, so they
share one server.

Every page is watched: an uncaught script error fails the test, and so does a
console error unless the test says it expects it (a 400 the test provokes,
a socket refused while offline).

Without Chromium (or Playwright) the tests skip, unless REQUIRE_SERVICES=1
makes them fail, as in CI.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery staple"
SERVER_START_SECONDS = 60
# Playwright waits this long for what a test expects to appear.
EXPECT_TIMEOUT_MS = 10_000


# --- The server ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_environment(sqlite_path: Path) -> dict[str, str]:
    """Environment for a server on the embedded default, whatever the caller's shell has set."""
    env = {**os.environ}
    env.update(
        {
            "DEBUG": "1",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SQLITE_PATH": str(sqlite_path),
            # Empty, not unset: an `.env` file must not switch these to PostgreSQL and Redis.
            "DATABASE_URL": "",
            "REDIS_URL": "",
            "SECRET_KEY": secrets.token_urlsafe(50),
            # Fast password hashing, as in the rest of the suite.
            "TESTING": "1",
            # Every test signs people up from 127.0.0.1; the limits have tests of their own.
            "RATELIMIT_ENABLE": "0",
            "LOG_LEVEL": "WARNING",
        }
    )
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


@dataclass
class Server:
    """A Daphne subprocess serving the app on 127.0.0.1:`port`."""

    port: int
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def start(self) -> None:
        """Start serving; return once /healthz answers."""
        self.process = subprocess.Popen(  # noqa: S603 — our own interpreter and app
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "chatproject.asgi:application"],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + SERVER_START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.process.kill()
        raise RuntimeError(f"the server did not answer within {SERVER_START_SECONDS}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


def start_server(workdir: Path) -> Server:
    """Migrate a fresh SQLite database and serve it with Daphne on a free port."""
    env = server_environment(workdir / "chat.sqlite3")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        timeout=120,
    )
    server = Server(port=_free_port(), env=env, log=workdir / "server.log")
    server.start()
    return server


# --- People, over the REST API -------------------------------------------------------------------

_serial = itertools.count(1)
RUN = secrets.token_hex(2)


def unique(stem: str) -> str:
    """A name no other test uses on this server (usernames allow 30 characters)."""
    return f"{stem}{RUN}{next(_serial)}"


@dataclass
class Person:
    id: int
    username: str
    display_name: str
    access: str


def call_api(server: Server, method: str, path: str, body: object = None, *, token: str | None = None) -> Any:
    """Call /api/v1/ and return the decoded reply (None for an empty one); raise on an error status."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{server.url}/api/v1/{path}", data=data, method=method)  # noqa: S310
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            text = response.read().decode()
    except urllib.error.HTTPError as error:
        raise AssertionError(f"{method} {path} → {error.code}: {error.read().decode()}") from None
    return json.loads(text) if text else None


# --- Pages ------------------------------------------------------------------------------------------


@dataclass
class Watched:
    """A page with the errors it logged."""

    page: Any
    context: Any
    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow_console_error(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def unexpected_errors(self) -> list[str]:
        return [error for error in self.errors if not any(pattern.search(error) for pattern in self.allowed)]


def sign_in(page: Any, person: Person, path: str = "/") -> None:
    """Log in through the log-in form and wait for the chat screen to be connected."""
    from playwright.sync_api import expect

    page.goto(f"/login/?next={path}")
    page.get_by_label("Username").fill(person.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
