"""Structured logs: JSON lines with a request id through every line, and never a secret or a message body.

Lines are captured with the very formatter the LOGGING setting installs, on
the root logger at DEBUG, so whatever any module logs is seen.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.test import Client
from rest_framework.test import APIClient

from chatproject.asgi import application
from core import logs
from realtime import delivery, presence

REPO_ROOT = Path(__file__).resolve().parents[2]
ORIGIN = (b"origin", b"http://127.0.0.1:8000")


class Captured:
    """Every log line written while it is installed, rendered as JSON and as console text."""

    def __init__(self) -> None:
        self.json_stream = io.StringIO()
        self.console_stream = io.StringIO()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.json_stream.getvalue().splitlines()]

    def text(self) -> str:
        return self.json_stream.getvalue() + self.console_stream.getvalue()

    def named(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("event") == event]


@pytest.fixture
def captured() -> Iterator[Captured]:
    capture = Captured()
    handlers = []
    for stream, log_format in ((capture.json_stream, "json"), (capture.console_stream, "console")):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logs.formatter(log_format))
        handlers.append(handler)
    root = logging.getLogger()
    level = root.level
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        for handler in handlers:
            root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
def fresh_realtime(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pump that has not seen earlier tests' events, and presence for this test's event loop."""
    monkeypatch.setattr(delivery, "pump", delivery.EventPump())
    monkeypatch.setattr(presence, "_backend", None)


async def _receive_json(communicator: WebsocketCommunicator, predicate: Callable[[dict[str, Any]], bool]) -> None:
    while True:
        frame = await communicator.receive_json_from(timeout=5)
        if predicate(frame):
            return


def run_socket(headers: list[tuple[bytes, bytes]], script: Callable[[WebsocketCommunicator], Any]) -> bool:
    """Open /ws/ through the whole ASGI stack with these headers, run `script` if accepted, then close."""

    async def main() -> bool:
        # Host as every HTTP/1.1 client sends it: the page at ORIGIN is this server's own.
        communicator = WebsocketCommunicator(application, "/ws/", headers=[(b"host", b"127.0.0.1:8000"), *headers])
        connected, _ = await communicator.connect(timeout=5)
        try:
            if connected:
                await _receive_json(communicator, lambda frame: frame["type"] == "hello")
                await script(communicator)
        finally:
            await communicator.disconnect(timeout=5)
        return connected

    return async_to_sync(main)()


# --- Redaction ----------------------------------------------------------------------------------


def test_redaction_hides_sensitive_keys_at_any_depth() -> None:
    line = logs.redact(
        None,
        "info",
        {
            "event": "x",
            "password": "hunter2",
            "refresh_token": "r",
            "body": "a private message",
            "data": {"Authorization": "Bearer abc", "nested": [{"access": "eyJ"}], "kept": 3},
            "user_id": 7,
        },
    )

    assert line["password"] == line["refresh_token"] == line["body"] == logs.REDACTED
    assert line["data"] == {"Authorization": logs.REDACTED, "nested": [{"access": logs.REDACTED}], "kept": 3}
    assert line["user_id"] == 7
    assert list(line)[:1] == ["event"]


def test_redaction_finds_jwts_and_bearer_credentials_inside_text() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoxfQ.c2lnbmF0dXJl"

    text = logs.redact_text(f"token {jwt} then Authorization: Bearer s3cr3t-value, done")

    assert jwt not in text
    assert "s3cr3t-value" not in text
    assert text == f"token {logs.REDACTED} then Authorization: Bearer {logs.REDACTED}, done"


# --- HTTP ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_request_line_has_request_id_user_route_status_and_duration(captured, client_for, alice, lobby) -> None:
    client = client_for(alice)

    response = client.get(f"/api/v1/rooms/{lobby.pk}/messages/", HTTP_X_REQUEST_ID="req-0123456789abcdef")

    assert response["X-Request-ID"] == "req-0123456789abcdef"
    (line,) = captured.named("http.request")
    assert line["request_id"] == "req-0123456789abcdef"
    assert line["user_id"] == alice.pk
    assert line["route"] == "/api/v1/rooms/<id:room_id>/messages/"
    assert (line["method"], line["path"], line["status"]) == ("GET", f"/api/v1/rooms/{lobby.pk}/messages/", 200)
    assert isinstance(line["duration_ms"], float)
    assert line["level"] == "info"
    assert line["logger"] == "chat.access"
    assert line["timestamp"].endswith("Z")


@pytest.mark.django_db
@pytest.mark.parametrize("given", [None, "short", "has spaces in it!", "x" * 200, "ünïcode-request-id"])
def test_a_missing_or_malformed_request_id_is_replaced(captured, anon, given) -> None:
    headers = {} if given is None else {"HTTP_X_REQUEST_ID": given}

    response = anon.get("/healthz", **headers)

    request_id = response["X-Request-ID"]
    assert request_id != given
    assert len(request_id) == 32
    (line,) = captured.named("http.request")
    assert line["request_id"] == request_id
    # Probes come every few seconds: their lines are DEBUG.
    assert line["level"] == "debug"


@pytest.mark.django_db
@pytest.mark.urls("core.tests.broken_urls")
def test_error_lines_inside_a_request_carry_its_request_id(captured) -> None:
    client = Client(raise_request_exception=False)

    response = client.get("/explode/", HTTP_X_REQUEST_ID="req-explode-000001")

    assert response.status_code == 500
    errors = [line for line in captured.lines() if line["level"] == "error"]
    assert errors, captured.lines()
    assert all(line["request_id"] == "req-explode-000001" for line in errors)
    assert any("RuntimeError" in line.get("exception", "") for line in errors)
    (access,) = captured.named("http.request")
    assert (access["status"], access["request_id"]) == (500, "req-explode-000001")


@pytest.mark.django_db
def test_django_lines_after_the_response_carry_the_request_id(captured, anon) -> None:
    # Django logs 4xx responses once the middleware has returned.
    response = anon.get("/api/v1/users/me/", HTTP_X_REQUEST_ID="req-unauthorized-01")

    assert response.status_code == 401
    (warning,) = [line for line in captured.lines() if line["logger"] == "django.request"]
    assert warning["request_id"] == "req-unauthorized-01"


@pytest.mark.django_db
def test_each_request_starts_with_a_context_of_its_own(captured, anon) -> None:
    structlog.contextvars.bind_contextvars(request_id="req-stale-0000001", connection="stale")

    anon.get("/healthz", HTTP_X_REQUEST_ID="req-fresh-000001")

    (line,) = captured.named("http.request")
    assert line["request_id"] == "req-fresh-000001"
    assert "connection" not in line


# --- WebSocket ----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_socket_lines_carry_the_connection_request_id_and_user(captured, fresh_realtime, alice) -> None:
    from rest_framework_simplejwt.tokens import AccessToken

    token = str(AccessToken.for_user(alice)).encode()
    headers = [(b"authorization", b"Bearer " + token), ORIGIN, (b"x-request-id", b"conn-0123456789")]

    async def script(communicator: WebsocketCommunicator) -> None:
        await communicator.send_json_to({"type": "no.such.frame"})
        await _receive_json(communicator, lambda frame: frame["type"] == "error")

    assert run_socket(headers, script)

    connect, refused, disconnect = (
        captured.named(name) for name in ("ws.connect", "ws.frame_refused", "ws.disconnect")
    )
    for line in (*connect, *refused, *disconnect):
        assert (line["request_id"], line["user_id"], line["route"]) == ("conn-0123456789", alice.pk, "/ws/")
    assert len(connect) == len(refused) == len(disconnect) == 1
    assert refused[0]["code"] == "unknown_type"
    assert disconnect[0]["code"] == 1000
    assert "duration_s" in disconnect[0]


@pytest.mark.django_db(transaction=True)
def test_refused_handshakes_are_logged(captured, fresh_realtime) -> None:
    assert not run_socket([ORIGIN, (b"x-request-id", b"conn-anonymous-01")], lambda communicator: None)
    assert not run_socket([(b"origin", b"https://evil.example")], lambda communicator: None)

    reasons = {line["reason"]: line for line in captured.named("ws.refused")}
    assert set(reasons) == {"unauthenticated", "origin"}
    assert reasons["unauthenticated"]["request_id"] == "conn-anonymous-01"
    assert reasons["origin"]["origin"] == "https://evil.example"


# --- Nothing secret, ever -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_tokens_passwords_and_message_bodies_never_reach_the_logs(captured, fresh_realtime, alice, lobby) -> None:
    marker = uuid.uuid4().hex
    password = f"pw-{marker}-Correct-Horse"
    wrong_password = f"wrong-{marker}"
    bodies = {name: f"{name}-{marker}" for name in ("rest", "edited", "socket", "refused")}
    api = APIClient()

    registered = api.post(
        "/api/v1/auth/register/",
        {"username": "dora", "email": "dora@example.com", "password": password},
        format="json",
    )
    assert registered.status_code == 201, registered.content
    assert (
        api.post("/api/v1/auth/token/", {"username": "dora", "password": wrong_password}, format="json").status_code
        == 401
    )
    tokens = api.post("/api/v1/auth/token/", {"username": "dora", "password": password}, format="json").json()
    refreshed = api.post("/api/v1/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json").json()
    secrets = [password, wrong_password, tokens["access"], tokens["refresh"], refreshed["access"], refreshed["refresh"]]
    secrets += [registered.json()["access"], registered.json()["refresh"]]

    api.credentials(HTTP_AUTHORIZATION=f"Bearer {refreshed['access']}")
    assert api.post(f"/api/v1/rooms/{lobby.pk}/join/").status_code in (200, 201)
    posted = api.post(f"/api/v1/rooms/{lobby.pk}/messages/", {"body": bodies["rest"]}, format="json")
    assert posted.status_code == 201, posted.content
    edited = api.patch(f"/api/v1/messages/{posted.json()['id']}/", {"body": bodies["edited"]}, format="json")
    assert edited.status_code == 200, edited.content
    search = api.get("/api/v1/search/messages/", {"q": bodies["rest"]})
    assert search.status_code == 200

    async def script(communicator: WebsocketCommunicator) -> None:
        await communicator.send_json_to(
            {"type": "message.send", "room": lobby.pk, "body": bodies["socket"], "client_id": "c-1"}
        )
        await _receive_json(communicator, lambda frame: frame.get("message", {}).get("body") == bodies["socket"])
        # Refused: a room that does not exist, and a frame that is not JSON, both carrying a body.
        await communicator.send_json_to({"type": "message.send", "room": 999999, "body": bodies["refused"]})
        await _receive_json(communicator, lambda frame: frame["type"] == "error")
        await communicator.send_to(text_data='{"type": "message.send", "body": "' + bodies["refused"])
        await _receive_json(communicator, lambda frame: frame["type"] == "error")

    headers = [(b"authorization", f"Bearer {refreshed['access']}".encode()), ORIGIN]
    assert run_socket(headers, script)

    # The capture saw the whole story ...
    events = {line["event"] for line in captured.lines()}
    assert {"http.request", "ws.connect", "ws.frame_refused", "ws.disconnect"} <= events
    assert len(captured.named("http.request")) >= 8
    # ... and not one secret or body, in either format.
    text = captured.text()
    for secret in [*secrets, *bodies.values()]:
        assert secret not in text
    assert marker not in text


# --- Formats ----------------------------------------------------------------------------------------


def test_console_format_is_readable_text() -> None:
    record = logging.LogRecord("chat.test", logging.INFO, __file__, 1, "hello %s", ("world",), None)

    line = logs.formatter("console").format(record)

    assert not line.startswith("{")
    assert "hello world" in line
    assert "[chat.test]" in line


def _first_log_line(**environment: str) -> str:
    env = {name: value for name, value in os.environ.items() if name not in ("DATABASE_URL", "REDIS_URL", "LOG_FORMAT")}
    env.update(environment, DJANGO_SETTINGS_MODULE="chatproject.settings")
    script = "import django, logging; django.setup(); logging.getLogger('chat.test').warning('started')"
    result = subprocess.run(  # noqa: S603 - fixed interpreter and script
        [sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stderr.strip().splitlines()[-1]


def test_production_writes_json_lines_and_development_writes_text() -> None:
    production = _first_log_line(
        DEBUG="0", SECRET_KEY="k9Qz-7vR2mXw4LpT8sYb1NcJ6hFd3GaE5uKo0iVn_WqZr2TyUx", ALLOWED_HOSTS="chat.example.com"
    )
    development = _first_log_line(DEBUG="1")

    assert json.loads(production)["event"] == "started"
    assert not development.startswith("{")
    assert "started" in development


def test_sql_is_never_logged_even_at_debug() -> None:
    from django.conf import settings

    assert settings.LOGGING["loggers"]["django.db.backends"]["level"] == "INFO"
    assert not logging.getLogger("django.db.backends").isEnabledFor(logging.DEBUG)
