"""Error tracking: with SENTRY_DSN set, unhandled exceptions reach Sentry, without personal data.

The end-to-end test starts the server's ASGI application in a fresh
interpreter with SENTRY_DSN pointing at a loopback HTTP server that plays
Sentry, and reads the envelopes that arrive.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
import structlog

from core import sentry
from core.tests.broken_urls import SECRET_DETAIL

REPO_ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import asyncio

import django

django.setup()

import sentry_sdk
from channels.testing import HttpCommunicator, WebsocketCommunicator

from chatproject.asgi import application
from realtime.consumers import ChatConsumer


async def explode(self):
    raise RuntimeError("the socket exploded")


ChatConsumer.connect = explode


async def main():
    http = HttpCommunicator(
        application,
        "GET",
        "/explode/?q=private-search-words",
        headers=[
            (b"host", b"127.0.0.1"),
            (b"authorization", b"Bearer secret-token-value"),
            (b"cookie", b"sessionid=secret-cookie-value"),
            (b"x-request-id", b"req-sentry-000001"),
        ],
    )
    response = await http.get_response(timeout=20)
    print("http", response["status"])
    socket = WebsocketCommunicator(application, "/ws/", headers=[(b"x-request-id", b"conn-sentry-000001")])
    await socket.send_input({"type": "websocket.connect"})
    try:
        await asyncio.wait_for(socket.future, 20)
    except RuntimeError as error:
        print("websocket", error)


asyncio.run(main())
sentry_sdk.flush(timeout=20)
"""


class FakeSentry:
    """A loopback HTTP server that records the envelopes the SDK sends."""

    def __init__(self) -> None:
        self.envelopes: list[str] = []
        self.paths: list[str] = []
        envelopes, paths = self.envelopes, self.paths

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                paths.append(self.path)
                envelopes.append(body.decode())
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.dsn = f"http://public0123456789@127.0.0.1:{self.server.server_address[1]}/42"

    def events(self) -> list[dict[str, Any]]:
        """Return the error events among the envelopes' items."""
        found = []
        for envelope in self.envelopes:
            lines = envelope.splitlines()
            for header, payload in zip(lines[1::2], lines[2::2], strict=False):
                if json.loads(header).get("type") == "event":
                    found.append(json.loads(payload))
        return found


@pytest.fixture
def fake_sentry() -> Iterator[FakeSentry]:
    fake = FakeSentry()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()


def run_server_script(tmp_path: Path, dsn: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "sentry_settings.py").write_text(
        "from chatproject.settings import *  # noqa: F403\nROOT_URLCONF = 'core.tests.broken_urls'\n"
    )
    env = {name: value for name, value in os.environ.items() if name not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        SENTRY_DSN=dsn,
        SENTRY_ENVIRONMENT="test",
        DJANGO_SETTINGS_MODULE="sentry_settings",
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO_ROOT)]),
        SQLITE_PATH=str(tmp_path / "db.sqlite3"),
    )
    return subprocess.run(  # noqa: S603 - fixed interpreter and script
        [sys.executable, "-c", SCRIPT], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_unhandled_exceptions_reach_sentry_without_personal_data(tmp_path: Path, fake_sentry: FakeSentry) -> None:
    result = run_server_script(tmp_path, fake_sentry.dsn)

    assert result.returncode == 0, result.stderr
    assert "http 500" in result.stdout
    assert "websocket the socket exploded" in result.stdout
    assert fake_sentry.paths and all(path.startswith("/api/42/envelope/") for path in fake_sentry.paths)

    events = fake_sentry.events()
    by_value = {value["value"]: event for event in events for value in event.get("exception", {}).get("values", [])}
    assert SECRET_DETAIL in by_value, events
    assert "the socket exploded" in by_value, events

    http_event = by_value[SECRET_DETAIL]
    assert http_event["environment"] == "test"
    assert http_event["tags"]["request_id"] == "req-sentry-000001"
    assert http_event["request"]["url"].endswith("/explode/")
    socket_event = by_value["the socket exploded"]
    assert socket_event["tags"]["request_id"] == "conn-sentry-000001"

    # Nothing that identifies a person or lets anyone in; no local variables.
    everything = "\n".join(fake_sentry.envelopes)
    for secret in ("secret-token-value", "secret-cookie-value", "private-search-words"):
        assert secret not in everything
    for event in events:
        assert "user" not in event
        assert not {"cookies", "data", "query_string", "env"} & set(event.get("request", {}))
        for value in event["exception"]["values"]:
            for frame in value.get("stacktrace", {}).get("frames", []):
                assert "vars" not in frame


def test_without_a_dsn_sentry_stays_off() -> None:
    app = object()

    assert not sentry_sdk.is_initialized()
    assert sentry.wrap_websocket(app) is app


def test_scrub_event_drops_personal_data_and_tags_the_request_id() -> None:
    event: Any = {
        "user": {"id": 1, "ip_address": "203.0.113.9"},
        "request": {
            "url": "https://chat.example.com/api/v1/search/messages/?q=secret",
            "query_string": "q=secret",
            "cookies": {"sessionid": "x"},
            "data": {"body": "a message"},
            "env": {"REMOTE_ADDR": "203.0.113.9"},
            "method": "GET",
        },
    }
    tokens = structlog.contextvars.bind_contextvars(request_id="req-scrub-000001", route="/api/v1/search/messages/")
    try:
        scrubbed = sentry.scrub_event(event, {})
    finally:
        structlog.contextvars.reset_contextvars(**tokens)

    assert "user" not in scrubbed
    assert scrubbed["request"] == {"url": "https://chat.example.com/api/v1/search/messages/", "method": "GET"}
    assert scrubbed["tags"] == {"request_id": "req-scrub-000001", "route": "/api/v1/search/messages/"}
