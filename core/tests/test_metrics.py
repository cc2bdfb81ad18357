"""/metrics: who may read it, and that the realtime path, the HTTP API and the pool report what they do.

Counters are process-wide and other tests move them too, so each test reads
a value before and after and checks the difference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.db import connection
from django.test import Client
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from chatproject.asgi import application
from core import metrics
from messaging.services import message_post
from realtime import delivery, presence

ORIGIN = (b"origin", b"http://127.0.0.1:8000")
TOKEN = "scrape-token-0123456789abcdef"


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Delta:
    """Read a sample now; `.change()` is how far it moved since."""

    def __init__(self, name: str, **labels: str) -> None:
        self.name, self.labels = name, labels
        self.start = value(name, **labels)

    def change(self) -> float:
        return value(self.name, **self.labels) - self.start


@pytest.fixture
def production(settings: Any) -> Any:
    settings.DEBUG = False
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = ["10.1.0.0/16", "fd00::/8"]
    return settings


# --- Access ---------------------------------------------------------------------------------------


def test_metrics_are_open_in_debug(settings: Any) -> None:
    settings.DEBUG = True

    response = Client().get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    names = {family.name for family in text_string_to_metric_families(response.content.decode())}
    assert {"chat_websocket_connections", "chat_delivery_latency_seconds", "chat_db_pool_connections"} <= names


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"HTTP_AUTHORIZATION": "Bearer wrong-token"},
        {"HTTP_AUTHORIZATION": f"Basic {TOKEN}"},
        {"HTTP_AUTHORIZATION": "Bearer "},
        {"REMOTE_ADDR": "10.2.0.1"},
        {"REMOTE_ADDR": "not-an-address"},
    ],
)
def test_production_refuses_a_scrape_without_the_token_or_an_allowed_address(production: Any, headers: Any) -> None:
    response = Client().get("/metrics", **headers)

    assert response.status_code == 403
    assert b"chat_" not in response.content


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"},
        {"HTTP_AUTHORIZATION": f"bearer {TOKEN}"},
        {"REMOTE_ADDR": "10.1.200.3"},
        {"REMOTE_ADDR": "fd00::17"},
    ],
)
def test_production_answers_the_token_or_an_allowed_address(production: Any, headers: Any) -> None:
    response = Client().get("/metrics", **headers)

    assert response.status_code == 200
    assert b"chat_websocket_connections" in response.content


def test_production_without_a_token_or_networks_is_closed(production: Any) -> None:
    production.METRICS_TOKEN = ""
    production.METRICS_ALLOWED_NETWORKS = []

    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403


def test_a_scraper_may_address_a_replica_by_ip(production: Any) -> None:
    # Prometheus sends Host: <pod or container IP>:8000, which ALLOWED_HOSTS does not list.
    response = Client().get("/metrics", HTTP_HOST="10.1.2.3:8000", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert response.status_code == 200


def test_bad_metrics_networks_stop_the_server() -> None:
    from chatproject.tests.test_settings import run_settings

    result = run_settings(METRICS_ALLOWED_NETWORKS="10.0.0.0/8,not-a-network")

    assert result.returncode != 0
    assert "METRICS_ALLOWED_NETWORKS" in result.stderr


# --- HTTP ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_requests_are_counted_by_url_pattern_and_status(client_for: Any, alice: Any, lobby: Any) -> None:
    route = "/api/v1/rooms/<id:room_id>/messages/"
    ok = Delta("chat_http_requests_total", method="GET", route=route, status="200")
    missing = Delta("chat_http_requests_total", method="GET", route="<unmatched>", status="404")
    timed = Delta("chat_http_request_duration_seconds_count", method="GET", route=route)

    client = client_for(alice)
    client.get(f"/api/v1/rooms/{lobby.pk}/messages/")
    client.get(f"/api/v1/rooms/{lobby.pk}/messages/?limit=5")
    client.get("/no/such/page/")

    assert ok.change() == 2
    assert timed.change() == 2
    assert missing.change() == 1


# --- Events --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_messages_posted_are_counted_once_committed(alice: Any, lobby: Any, django_capture_on_commit_callbacks) -> None:
    posted = Delta("chat_messages_posted_total")
    events = Delta("chat_events_total", type="message.new")

    with django_capture_on_commit_callbacks(execute=True):
        message_post(room=lobby, author=alice, body="counted")
    assert (posted.change(), events.change()) == (1, 1)


@pytest.mark.django_db
def test_a_rolled_back_message_is_not_counted(alice: Any, lobby: Any, django_capture_on_commit_callbacks) -> None:
    posted = Delta("chat_messages_posted_total")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        message_post(room=lobby, author=alice, body="never committed")

    assert callbacks  # the count waits for the commit, which never comes
    assert posted.change() == 0


def test_a_failed_doorbell_is_a_channel_layer_error(monkeypatch: pytest.MonkeyPatch) -> None:
    class BrokenLayer:
        async def group_send(self, group: str, message: dict[str, Any]) -> None:
            raise ConnectionError("redis is away")

    monkeypatch.setattr(delivery, "get_channel_layer", BrokenLayer)
    errors = Delta("chat_channel_layer_errors_total", operation="doorbell_send")

    delivery._ring_everyone(type("E", (), {"id": 1})())  # type: ignore[arg-type]

    assert errors.change() == 1


# --- WebSocket -------------------------------------------------------------------------------------


@pytest.fixture
def fresh_realtime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delivery, "pump", delivery.EventPump())
    monkeypatch.setattr(presence, "_backend", None)


def bearer(user: Any) -> tuple[bytes, bytes]:
    from rest_framework_simplejwt.tokens import AccessToken

    return (b"authorization", b"Bearer " + str(AccessToken.for_user(user)).encode())


async def until(communicator: WebsocketCommunicator, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    while True:
        frame = await communicator.receive_json_from(timeout=5)
        if predicate(frame):
            return frame


def socket_session(headers: list[tuple[bytes, bytes]], script: Any, *, path: str = "/ws/") -> bool:
    async def main() -> bool:
        # Host as every HTTP/1.1 client sends it: the page at ORIGIN is this server's own.
        communicator = WebsocketCommunicator(application, path, headers=[(b"host", b"127.0.0.1:8000"), *headers])
        connected, _ = await communicator.connect(timeout=5)
        try:
            if connected:
                await script(communicator)
        finally:
            await communicator.disconnect(timeout=5)
        return connected

    return async_to_sync(main)()


@pytest.mark.django_db(transaction=True)
def test_sockets_frames_refusals_and_delivery_latency_are_counted(
    fresh_realtime: None, alice: Any, bob: Any, lobby: Any
) -> None:
    open_sockets = Delta("chat_websocket_connections")
    pings = Delta("chat_websocket_frames_received_total", type="ping")
    unknown = Delta("chat_websocket_frames_received_total", type="other")
    pongs = Delta("chat_websocket_frames_sent_total", type="pong")
    hellos = Delta("chat_websocket_frames_sent_total", type="hello")
    new_messages = Delta("chat_websocket_frames_sent_total", type="message.new")
    refused = Delta("chat_websocket_frames_refused_total", code="unknown_type")
    latency = Delta("chat_delivery_latency_seconds_count")
    seen_open: list[float] = []

    async def script(communicator: WebsocketCommunicator) -> None:
        await until(communicator, lambda frame: frame["type"] == "hello")
        seen_open.append(open_sockets.change())
        await communicator.send_json_to({"type": "ping"})
        await until(communicator, lambda frame: frame["type"] == "pong")
        await communicator.send_json_to({"type": "teleport"})
        await until(communicator, lambda frame: frame["type"] == "error")
        from asgiref.sync import sync_to_async

        await sync_to_async(message_post)(room=lobby, author=bob, body="latency probe")
        await until(communicator, lambda frame: frame["type"] == "message.new")

    assert socket_session([bearer(alice), ORIGIN], script)

    assert seen_open == [1]
    assert open_sockets.change() == 0
    assert (pings.change(), unknown.change(), pongs.change(), hellos.change()) == (1, 1, 1, 1)
    assert refused.change() == 1
    assert new_messages.change() == 1
    assert latency.change() == 1
    assert value("chat_delivery_latency_seconds_sum") > 0


@pytest.mark.django_db(transaction=True)
def test_rate_limited_frames_are_counted(fresh_realtime: None, alice: Any) -> None:
    limited = Delta("chat_websocket_frames_refused_total", code="rate_limited")

    async def script(communicator: WebsocketCommunicator) -> None:
        await until(communicator, lambda frame: frame["type"] == "hello")
        for _ in range(30):
            await communicator.send_json_to({"type": "ping"})
        await until(communicator, lambda frame: frame.get("code") == "rate_limited")

    assert socket_session([bearer(alice), ORIGIN], script)
    assert limited.change() >= 1


@pytest.mark.django_db(transaction=True)
def test_resumes_are_counted_by_outcome(fresh_realtime: None, alice: Any, lobby: Any) -> None:
    replayed = Delta("chat_websocket_resumes_total", outcome="replayed")
    resync = Delta("chat_websocket_resumes_total", outcome="resync")
    replayed_frames = Delta("chat_websocket_replayed_frames_total")

    async def resume(communicator: WebsocketCommunicator) -> None:
        await until(communicator, lambda frame: frame["type"] == "resume.done")

    async def too_new(communicator: WebsocketCommunicator) -> None:
        await until(communicator, lambda frame: frame["type"] == "resync.required")

    assert socket_session([bearer(alice), ORIGIN], resume, path="/ws/?last_event_id=0")
    assert socket_session([bearer(alice), ORIGIN], too_new, path=f"/ws/?last_event_id={2**40}")

    assert (replayed.change(), resync.change()) == (1, 1)
    assert replayed_frames.change() >= 1  # at least lobby's creation


@pytest.mark.django_db(transaction=True)
def test_refused_handshakes_are_counted_by_reason(fresh_realtime: None) -> None:
    anonymous = Delta("chat_websocket_handshakes_refused_total", reason="unauthenticated")
    foreign = Delta("chat_websocket_handshakes_refused_total", reason="origin")

    assert not socket_session([ORIGIN], None)
    assert not socket_session([(b"origin", b"https://evil.example")], None)

    assert (anonymous.change(), foreign.change()) == (1, 1)


# --- The database pool -------------------------------------------------------------------------------


class FakePool:
    def get_stats(self) -> dict[str, int]:
        return {
            "pool_min": 2,
            "pool_max": 20,
            "pool_size": 7,
            "pool_available": 3,
            "requests_waiting": 1,
            "requests_num": 120,
            "requests_queued": 9,
            "requests_wait_ms": 2500,
            "requests_errors": 2,
            "connections_errors": 1,
            "connections_lost": 4,
        }


def test_pool_statistics_become_gauges_and_counters(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.db.backends.postgresql.base import DatabaseWrapper

    monkeypatch.setattr(DatabaseWrapper, "_connection_pools", {"default": FakePool()})

    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in metrics.DatabasePoolCollector().collect()
        for sample in family.samples
    }

    def at(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted({"alias": "default", **labels}.items())))]

    assert at("chat_db_pool_connections", state="in_use") == 4
    assert at("chat_db_pool_connections", state="idle") == 3
    assert (at("chat_db_pool_max_connections"), at("chat_db_pool_min_connections")) == (20, 2)
    assert at("chat_db_pool_requests_waiting") == 1
    assert at("chat_db_pool_requests_total") == 120
    assert at("chat_db_pool_requests_queued_total") == 9
    assert at("chat_db_pool_wait_seconds_total") == 2.5
    assert at("chat_db_pool_request_errors_total") == 2
    assert at("chat_db_pool_connection_errors_total") == 1
    assert at("chat_db_pool_connections_lost_total") == 4


def test_without_a_pool_the_families_are_there_without_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.db.backends.postgresql.base import DatabaseWrapper

    monkeypatch.setattr(DatabaseWrapper, "_connection_pools", {})

    families = list(metrics.DatabasePoolCollector().collect())

    assert "chat_db_pool_connections" in {family.name for family in families}
    assert all(not family.samples for family in families)


@pytest.mark.services("postgres")
@pytest.mark.django_db
def test_the_real_postgres_pool_is_reported(settings: Any) -> None:
    settings.DEBUG = True
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")

    text = Client().get("/metrics").content.decode()

    families = {family.name: family for family in text_string_to_metric_families(text)}
    pool_max = [s for s in families["chat_db_pool_max_connections"].samples if s.labels["alias"] == "default"]
    assert pool_max and pool_max[0].value == settings.DATABASES["default"]["OPTIONS"]["pool"]["max_size"]
    assert any(s.labels["state"] == "in_use" for s in families["chat_db_pool_connections"].samples)
