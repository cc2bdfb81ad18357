"""Fixtures for notification tests: a real Web Push receiver on loopback, browsers, and a worker on a test clock."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.utils import timezone
from django.utils.module_loading import autodiscover_modules
from py_vapid import Vapid02

from jobs.models import Job
from jobs.worker import Worker
from notifications.notifier import notifier_batch
from notifications.push import generate_vapid_keys


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Browser:
    """A browser's push subscription: its endpoint on the receiver and the private half of its keys."""

    name: str
    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    # Pushes it received, decrypted, in order.
    received: list[dict[str, Any]] = field(default_factory=list)
    # Statuses (and headers) the push service answers with next; 201 when empty.
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)

    @property
    def keys(self) -> dict[str, str]:
        public = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {"p256dh": b64(public), "auth": b64(self.auth)}

    def subscription(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "keys": self.keys}


class PushReceiver:
    """A push service on loopback: checks each push's VAPID signature and decrypts its payload.

    A push whose signature, audience, expiry or key is wrong, or that cannot
    be decrypted, is answered 400 and recorded in `refused`.
    """

    def __init__(self, vapid_public_key: str) -> None:
        self.vapid_public_key = vapid_public_key
        self.browsers: dict[str, Browser] = {}
        self.refused: list[str] = []
        # Called with each push before it is answered; a status it returns is answered instead.
        self.intercept: Callable[[str], int | None] | None = None
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, headers = receiver.receive(
                    self.path, {name.lower(): value for name, value in self.headers.items()}, body
                )
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def browser(self, name: str) -> Browser:
        browser = Browser(
            name=name,
            endpoint=f"{self.origin}/push/{name}",
            private_key=ec.generate_private_key(ec.SECP256R1()),
            auth=os.urandom(16),
        )
        self.browsers[name] = browser
        return browser

    def _verify(self, headers: dict[str, str]) -> str | None:
        auth = headers.get("authorization", "")
        if not auth.startswith("vapid "):
            return "no vapid authorization"
        parts = dict(part.split("=", 1) for part in auth[len("vapid ") :].split(","))
        if parts.get("k") != self.vapid_public_key:
            return "signed with another key"
        if not Vapid02.verify(auth):
            return "bad signature"
        claims = json.loads(unb64(parts["t"].split(".")[1]))
        if claims.get("aud") != self.origin:
            return f"wrong audience {claims.get('aud')}"
        if not time.time() < claims.get("exp", 0) <= time.time() + 24 * 3600:
            return "bad expiry"
        if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
            return "no subject"
        if headers.get("content-encoding") != "aes128gcm":
            return "not aes128gcm"
        if not headers.get("ttl", "").isdigit():
            return "no TTL"
        return None

    def receive(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str]]:
        name = path.rsplit("/", 1)[-1]
        if self.intercept is not None and (status := self.intercept(name)) is not None:
            return status, {}
        with self.lock:
            browser = self.browsers.get(name)
            if browser is None:
                return 404, {}
            problem = self._verify(headers)
            if problem is None:
                try:
                    plain = http_ece.decrypt(
                        body, private_key=browser.private_key, auth_secret=browser.auth, version="aes128gcm"
                    )
                except Exception as exc:
                    problem = f"cannot decrypt: {exc}"
            if problem is not None:
                self.refused.append(problem)
                return 400, {}
            if browser.answers:
                status, extra = browser.answers.pop(0)
                if status >= 300:
                    return status, extra
            browser.received.append(json.loads(plain))
            return 201, {}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True, scope="session")
def _every_task_known() -> None:
    autodiscover_modules("tasks")


@pytest.fixture
def vapid(settings: Any) -> tuple[str, str]:
    private, public = generate_vapid_keys()
    settings.VAPID_PRIVATE_KEY = private
    settings.VAPID_PUBLIC_KEY = public
    settings.VAPID_SUBJECT = "mailto:ops@example.com"
    settings.PUSH_ALLOW_HTTP = True
    settings.PUSH_DELAY_SECONDS = 15
    return private, public


@pytest.fixture
def receiver(vapid: tuple[str, str]) -> Iterator[PushReceiver]:
    push_service = PushReceiver(vapid[1])
    yield push_service
    push_service.close()


class Clock:
    """The real time moved on by the test, so due times written on the real clock compare right on a slow machine."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def __call__(self) -> datetime:
        return timezone.now() + self.offset

    def advance(self, **delta: float) -> datetime:
        self.offset += timedelta(**delta)
        return self()


@dataclass
class Worker_:
    """The queue's worker in this process on a clock the test moves, and the notifier it runs."""

    worker: Worker
    clock: Clock

    def drain(self, limit: int = 200) -> int:
        """Run due jobs until none is left (at most `limit`); return how many ran."""
        for ran in range(limit):
            if not self.worker.run_once():
                return ran
        raise AssertionError(f"still jobs due after {limit}")

    def notice(self) -> None:
        """Let the notifier read what was posted (as its periodic job would), then run what is due now."""
        from notifications.tasks import notifier_follow

        notifier_follow.enqueue()
        self.drain()

    def after(self, seconds: float) -> None:
        """Move the clock on and run what became due."""
        self.clock.advance(seconds=seconds)
        self.drain()


@pytest.fixture
def worker(db: None) -> Worker_:
    clock = Clock(timedelta(seconds=1))
    notifier_batch()  # the notifier starts at the log's head, before the test's messages
    return Worker_(
        Worker(worker_id="w1", clock=clock, lease=timedelta(seconds=60), poll_interval=0.0, scheduler=False), clock
    )


@pytest.fixture
def subscribe(client_for: Callable[..., Any], receiver: PushReceiver) -> Callable[..., Browser]:
    """Subscribe a new browser of `user` through the API."""

    def make(user: Any, name: str | None = None) -> Browser:
        browser = receiver.browser(name or f"{user.username}-{len(receiver.browsers)}")
        response = client_for(user).post("/api/v1/push/subscriptions/", browser.subscription(), format="json")
        assert response.status_code == 201, response.json()
        return browser

    return make


def dead_jobs() -> list[str]:
    return [job.last_error for job in Job.objects.filter(state=Job.State.DEAD)]


class MailHandler:
    """An aiosmtpd handler that keeps each delivered email, and refuses addresses that start with `bounce`."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.startswith("bounce"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        import email
        from email import policy

        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted for delivery"


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class MailServer:
    handler: MailHandler
    port: int
    controller: Any = None

    @property
    def messages(self) -> list[Any]:
        return self.handler.messages

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp_server(settings: Any) -> Iterator[MailServer]:
    """A real SMTP server on loopback, and the site's mail pointed at it."""
    server = MailServer(MailHandler(), free_port())
    server.start()
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": server.port, "timeout": 5},
        }
    }
    settings.SITE_URL = "https://chat.example.com"
    yield server
    server.stop()
