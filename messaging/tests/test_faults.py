"""Reliability under faults (issue 8), against real Daphne processes.

Each test starts its own servers on the test database (and, where Redis is
the fault, a throwaway redis-server of its own), injects one fault, and ends
with the oracle of `realtime_support`: every acknowledged send is one row,
and every client got every event of its rooms exactly once, in order.

Only 127.0.0.1 and throwaway services are used; the machine's PostgreSQL
and Redis are never restarted. Every wait is bounded. FAULT_SECONDS sets
how long Redis stays away in the Redis outage test (15 s in CI; try 60).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from messaging.tests.realtime_support import (
    Api,
    ChatClient,
    ServerPool,
    ThrowawayRedis,
    assert_delivered,
    assert_one_row_per_client_id,
    eventually,
    expected_messages,
    has_all,
    live_database_url,
    sent_messages,
    stop_all,
)
from messaging.tests.test_realtime_servers import all_confirmed, describe, register, run, typing_reaches_everyone

pytestmark = [pytest.mark.services("postgres", "redis"), pytest.mark.django_db(transaction=True)]

SETTLE_SECONDS = 1.5  # longer than the pump's 1 s poll
FAULT_SECONDS = float(os.environ.get("FAULT_SECONDS", "15"))

# Figures measured by the tests, printed at the end of each (pytest -s shows them).
figures: dict[str, Any] = {}


def raw_call(base: str, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, bytes, str]:
    """One HTTP call; return (status, raw body, content type) whatever the status."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)  # noqa: S310 (loopback http)
    request.add_header("Content-Type", "application/json")
    request.add_header("Accept", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=20) as reply:  # noqa: S310
            return reply.status, reply.read(), reply.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers.get("Content-Type", "")
    except OSError as error:
        return 0, repr(error).encode(), ""


def is_json_error(raw: bytes, content_type: str) -> bool:
    if "json" not in content_type:
        return False
    try:
        return isinstance(json.loads(raw), dict)
    except ValueError:
        return False


def message_rows(client_id: str) -> list[int]:
    from messaging.models import Message

    return list(Message.objects.filter(client_id=client_id).values_list("id", flat=True))


# --- (a) One client_id, sent 200 times at once over REST and WebSocket, to two processes ------------

REST_COPIES = 100
SOCKETS_PER_SERVER = 5
FRAMES_PER_SOCKET = 10  # under the per-socket burst of 20: none is rate limited


def test_the_same_client_id_sent_concurrently_makes_one_message(pool: ServerPool) -> None:
    a, b = pool.start("a", "b")
    api = Api(a)
    alice, bob = register(api, "alice", "bob")
    lobby = api.create_room(alice, "Lobby")
    api.join(bob, lobby)
    client_id = f"dup-{uuid.uuid4().hex[:16]}"
    frame = {"type": "message.send", "room": lobby, "body": "said once", "client_id": client_id}
    senders = [
        ChatClient(f"alice{n}@{s.name}", alice, [s], rate=1000) for s in (a, b) for n in range(SOCKETS_PER_SERVER)
    ]
    watchers = [ChatClient("bob@a", bob, [a]), ChatClient("bob@b", bob, [b])]
    clients = [*senders, *watchers]
    replies: list[tuple[int, bytes, str]] = []
    elapsed: list[float] = []

    def post(number: int) -> tuple[int, bytes, str]:
        server = (a, b)[number % 2]
        return raw_call(
            f"{server.url}/api/v1/",
            "POST",
            f"rooms/{lobby}/messages/",
            {"body": "said once", "client_id": client_id},
            token=alice.access,
        )

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.gather(*(client.start() for client in clients))
            started = time.monotonic()
            with ThreadPoolExecutor(max_workers=50) as threads:
                rest = [loop.run_in_executor(threads, post, number) for number in range(REST_COPIES)]

                async def frames(client: ChatClient) -> None:
                    for _ in range(FRAMES_PER_SOCKET):
                        assert await client.send_frame(frame), client.name

                await asyncio.gather(*(frames(client) for client in senders))
                replies.extend(await asyncio.gather(*rest))
            assert await eventually(lambda: all(client.message_ids for client in clients), 10), describe(clients)
            elapsed.append(time.monotonic() - started)
            await asyncio.sleep(SETTLE_SECONDS)
        finally:
            await stop_all(clients)

    run(scenario, pool, 90)

    rows = message_rows(client_id)
    assert len(rows) == 1, rows
    statuses = Counter(status for status, _raw, _type in replies)
    assert set(statuses) <= {200, 201} and statuses[201] <= 1, (statuses, [r for r in replies if r[0] >= 300][:3])
    assert {json.loads(raw)["id"] for _status, raw, _type in replies} == set(rows)
    for client in clients:
        announced = [event.message_id for event in client.events if event.type == "message.new"]
        assert announced == rows, (client.name, announced)
        assert not client.errors, (client.name, client.errors[:3])
    assert_delivered(clients)
    figures["idempotent"] = {
        "sends": REST_COPIES + 2 * SOCKETS_PER_SERVER * FRAMES_PER_SOCKET,
        "statuses": dict(statuses),
        "seconds": round(elapsed[0], 2),
    }
    print(f"\nidempotent send: {figures['idempotent']}")


# --- (b) Redis away for FAULT_SECONDS -------------------------------------------------------------


def test_sends_commit_and_arrive_while_redis_is_away(pool_on_own_redis: ServerPool, own_redis: ThrowawayRedis) -> None:
    pool = pool_on_own_redis
    a, b = pool.start("a", "b")
    api = Api(a)
    ann, ben, cat = register(api, "ann", "ben", "cat")
    lobby = api.create_room(ann, "Lobby")
    api.join(ben, lobby)
    api.join(cat, lobby)
    ann_a = ChatClient("ann@a", ann, [a, b], reconnect_window=FAULT_SECONDS + 30)
    ben_b = ChatClient("ben@b", ben, [b, a], reconnect_window=FAULT_SECONDS + 30)
    cat_a = ChatClient("cat@a", cat, [a, b], reconnect_window=FAULT_SECONDS + 30)
    clients = [ann_a, ben_b, cat_a]
    rest_posts: dict[int, int] = {}
    rest_statuses: Counter[int] = Counter()
    bad_bodies: list[tuple[int, bytes]] = []
    readiness: dict[str, list[int]] = {"during": [], "after": []}
    timeline: dict[str, float] = {}

    def rest_send(number: int) -> None:
        server = (a, b)[number % 2]
        client_id = f"rest-{uuid.uuid4().hex[:12]}"
        for _attempt in range(5):  # a client retries a failed send with the same client_id
            status, raw, content_type = raw_call(
                f"{server.url}/api/v1/",
                "POST",
                f"rooms/{lobby}/messages/",
                {"body": f"rest {number}", "client_id": client_id},
                token=ben.access,
            )
            rest_statuses[status] += 1
            if status in (200, 201):
                rest_posts[json.loads(raw)["id"]] = lobby
                return
            if status >= 500 and not is_json_error(raw, content_type):
                bad_bodies.append((status, raw[:200]))
            time.sleep(0.5)

    async def scenario() -> None:
        try:
            await asyncio.gather(*(client.start() for client in clients))
            started = time.monotonic()
            await ann_a.send(lobby, "before the outage")
            assert await all_confirmed(clients, 5), describe(clients)
            own_redis.shutdown()
            timeline["redis down"] = time.monotonic() - started
            number = 0
            while time.monotonic() - started < FAULT_SECONDS:
                await ann_a.send(lobby, f"ws during outage {number}")
                await asyncio.to_thread(rest_send, number)
                if number % 5 == 0:
                    for server in (a, b):
                        status, _raw, _type = await asyncio.to_thread(raw_call, server.url, "GET", "/readyz")
                        readiness["during"].append(status)
                number += 1
                await asyncio.sleep(0.3)
            timeline["sent during outage"] = number
            assert await all_confirmed(clients, 10), describe(clients)
            timeline["all confirmed during outage"] = time.monotonic() - started
            own_redis.start()
            timeline["redis back"] = time.monotonic() - started

            def ready() -> bool:
                statuses = [raw_call(server.url, "GET", "/readyz")[0] for server in (a, b)]
                readiness["after"] = statuses
                return statuses == [200, 200]

            for _ in range(40):
                if await asyncio.to_thread(ready):
                    break
                await asyncio.sleep(0.25)
            timeline["ready again"] = time.monotonic() - started
            for client in clients:
                await client.send(lobby, f"after the outage from {client.name}")
            assert await all_confirmed(clients, 15), describe(clients)
            expected = expected_messages(
                {client: {lobby} for client in clients}, {**sent_messages(clients), **rest_posts}
            )
            assert await eventually(lambda: has_all(expected), 15), describe(clients)
            timeline["all delivered"] = time.monotonic() - started
            # Typing rides the channel layer only: it works again once Redis is back.
            assert await typing_reaches_everyone(clients, lobby), describe(clients)
            await asyncio.sleep(SETTLE_SECONDS)
        finally:
            await stop_all(clients)

    run(scenario, pool, FAULT_SECONDS + 90)

    assert not bad_bodies, bad_bodies[:3]
    assert readiness["during"] and set(readiness["during"]) == {503}, readiness
    assert readiness["after"] == [200, 200], readiness
    assert set(rest_statuses) <= {200, 201}, rest_statuses
    assert all(not client.errors for client in clients), describe(clients)
    reports = assert_delivered(clients)
    sends = assert_one_row_per_client_id(clients) + len(rest_posts)
    figures["redis_outage"] = {
        "fault_seconds": FAULT_SECONDS,
        "sends": sends,
        "rest_statuses": dict(rest_statuses),
        "sockets": {client.name: client.connected_to for client in clients},
        "closes": {client.name: client.closes for client in clients},
        "received": [report.received for report in reports],
        "timeline": {key: round(value, 2) for key, value in timeline.items()},
    }
    print(f"\nredis outage: {figures['redis_outage']}")


# --- (c) SIGTERM to one process while clients are connected ------------------------------------------

SHUTDOWN_CLOSE_CODES = {1001, 1012}


def test_clients_of_a_stopped_server_are_closed_and_resume_on_the_other(pool: ServerPool) -> None:
    a, b = pool.start("a", "b")
    api = Api(b)
    users = register(api, "dan", "eve", "fay", "gus")
    lobby = api.create_room(users[0], "Lobby")
    for user in users[1:]:
        api.join(user, lobby)
    on_a = [ChatClient(f"{user.username}@a", user, [a, b]) for user in users[:3]]
    gus_b = ChatClient("gus@b", users[3], [b, a])
    clients = [*on_a, gus_b]
    timeline: dict[str, float] = {}
    exit_codes: list[int | None] = []

    async def pump(client: ChatClient, count: int) -> None:
        for number in range(count):
            await client.send(lobby, f"{client.name} {number}")

    async def scenario() -> None:
        try:
            await asyncio.gather(*(client.start() for client in clients))
            started = time.monotonic()
            flows = [asyncio.ensure_future(pump(gus_b, 60)), asyncio.ensure_future(pump(on_a[0], 30))]
            assert await eventually(lambda: len(gus_b.confirmed) >= 10, 10), describe(clients)
            await asyncio.to_thread(a.stop)  # SIGTERM; SIGKILL only after 5 s
            exit_codes.append(a.process.returncode)
            timeline["stopped"] = time.monotonic() - started
            assert await eventually(lambda: all(c.live and c.server is b for c in on_a), 15), describe(clients)
            timeline["all resumed on b"] = time.monotonic() - started
            await asyncio.wait_for(asyncio.gather(*flows), 30)
            assert await all_confirmed(clients, 15), describe(clients)
            expected = expected_messages({client: {lobby} for client in clients}, sent_messages(clients))
            assert await eventually(lambda: has_all(expected), 15), describe(clients)
            timeline["all delivered"] = time.monotonic() - started
            await asyncio.sleep(SETTLE_SECONDS)
        finally:
            await stop_all(clients)

    run(scenario, pool, 90)

    first_closes = [client.closes[0] for client in on_a]
    figures["graceful_shutdown"] = {
        "exit_code": exit_codes[0],
        "close codes": first_closes,
        "timeline": {key: round(value, 2) for key, value in timeline.items()},
        "retried": sum(client.retried for client in clients),
    }
    print(f"\ngraceful shutdown: {figures['graceful_shutdown']}")
    assert exit_codes[0] is not None and exit_codes[0] != -9, "SIGTERM did not stop the process within 5 s"
    for client in on_a:
        assert client.connected_to[0] == "a" and client.connected_to[-1] == "b", client.connected_to
        assert client.resumes >= 1 and client.resyncs == 0, client.name
    assert {code for _server, code, _reason in first_closes} <= SHUTDOWN_CLOSE_CODES, first_closes
    assert all(not client.errors for client in clients), describe(clients)
    assert_delivered(clients)
    assert_one_row_per_client_id(clients)


# --- (e) Long-lived sockets under the core layer's group expiry -----------------------------------------

GROUP_EXPIRY = 3  # seconds; the servers re-join every 1.5 s


def test_sockets_open_past_the_group_expiry_still_get_typing_and_messages(pool: ServerPool) -> None:
    a, b = pool.start("a", "b", CHANNEL_LAYER="core", CHANNEL_GROUP_EXPIRY=str(GROUP_EXPIRY))
    api = Api(a)
    ann, ben, cat = register(api, "ann", "ben", "cat")
    lobby = api.create_room(ann, "Lobby")
    api.join(ben, lobby)
    api.join(cat, lobby)
    clients = [ChatClient("ann@a", ann, [a]), ChatClient("ben@b", ben, [b]), ChatClient("cat@b", cat, [b])]

    async def scenario() -> None:
        try:
            await asyncio.gather(*(client.start() for client in clients))
            await asyncio.sleep(GROUP_EXPIRY * 2.5)
            assert await typing_reaches_everyone(clients, lobby), describe(clients)
            for client in clients:
                await client.send(lobby, f"still here, says {client.name}")
            assert await all_confirmed(clients, 10), describe(clients)
            expected = expected_messages({client: {lobby} for client in clients}, sent_messages(clients))
            assert await eventually(lambda: has_all(expected), 10), describe(clients)
            await asyncio.sleep(SETTLE_SECONDS)
        finally:
            await stop_all(clients)

    run(scenario, pool, 60)

    assert all(len(client.connected_to) == 1 for client in clients), describe(clients)
    assert_delivered(clients)


def test_a_core_layer_group_expiry_at_or_below_the_refresh_interval_is_refused() -> None:
    from django.test import override_settings

    from chatproject.checks import CORE_LAYER, channel_group_expiry

    def layer(expiry: int) -> dict[str, Any]:
        return {"default": {"BACKEND": CORE_LAYER, "CONFIG": {"hosts": [], "group_expiry": expiry}}}

    with override_settings(CHANNEL_LAYERS=layer(60), CHANNEL_GROUP_REFRESH=60.0):
        assert [error.id for error in channel_group_expiry()] == ["chat.E001"]
    with override_settings(CHANNEL_LAYERS=layer(30), CHANNEL_GROUP_REFRESH=60.0):
        assert [error.id for error in channel_group_expiry()] == ["chat.E001"]
    with override_settings(CHANNEL_LAYERS=layer(120), CHANNEL_GROUP_REFRESH=60.0):
        assert channel_group_expiry() == []
    pubsub = {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer", "CONFIG": {}}}
    with override_settings(CHANNEL_LAYERS=pubsub, CHANNEL_GROUP_REFRESH=60.0):
        assert channel_group_expiry() == []


# --- (f) PostgreSQL connections killed while clients send --------------------------------------------

KILL_ROUNDS = 4


SERVER_APPLICATION_NAME = "chat-fault-server"  # PGAPPNAME of the servers: only their connections are killed


def terminate_backends(database_url: str) -> int:
    """Terminate the servers' connections to the test database (the test's own stay); return how many."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as killer:
        rows = killer.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = %s",
            [SERVER_APPLICATION_NAME],
        ).fetchall()
    return sum(1 for (done,) in rows if done)


def test_sends_survive_killed_database_connections(pool: ServerPool) -> None:
    database_url = live_database_url()
    # DEBUG off, as in production: a 500 is then the JSON body of chatproject.errors, not Django's debug page.
    production = {"DEBUG": "0", "HTTPS_ONLY": "0", "TLS_PROXY": "0", "SECRET_KEY": uuid.uuid4().hex * 2}
    a, b = pool.start("a", "b", PGAPPNAME=SERVER_APPLICATION_NAME, **production)
    api = Api(a)
    hal, ida, jon = register(api, "hal", "ida", "jon")
    lobby = api.create_room(hal, "Lobby")
    api.join(ida, lobby)
    api.join(jon, lobby)
    clients = [ChatClient("hal@a", hal, [a, b]), ChatClient("ida@b", ida, [b, a])]
    rest_posts: dict[int, int] = {}
    rest_client_ids: list[str] = []
    statuses: Counter[int] = Counter()
    bad_bodies: list[tuple[int, bytes]] = []
    server_errors: list[int] = []
    killed: list[int] = []
    after: list[int] = []

    def rest_send(number: int) -> None:
        server = (a, b)[number % 2]
        client_id = f"jon-{uuid.uuid4().hex[:12]}"
        rest_client_ids.append(client_id)
        for _attempt in range(10):  # retried with the same client_id until acknowledged
            status, raw, content_type = raw_call(
                f"{server.url}/api/v1/",
                "POST",
                f"rooms/{lobby}/messages/",
                {"body": f"jon {number}", "client_id": client_id},
                token=jon.access,
            )
            statuses[status] += 1
            if status in (200, 201):
                rest_posts[json.loads(raw)["id"]] = lobby
                return
            if not is_json_error(raw, content_type):
                bad_bodies.append((status, raw[:300]))
            server_errors.append(status)
            time.sleep(0.2)

    async def scenario() -> None:
        try:
            await asyncio.gather(*(client.start() for client in clients))
            started = time.monotonic()

            async def rest_flow() -> None:
                for number in range(40):
                    await asyncio.to_thread(rest_send, number)

            async def ws_flow(client: ChatClient) -> None:
                for number in range(40):
                    await client.send(lobby, f"{client.name} {number}")

            async def killer() -> None:
                for _ in range(KILL_ROUNDS):
                    await asyncio.sleep(1.0)
                    killed.append(await asyncio.to_thread(terminate_backends, database_url))

            await asyncio.gather(rest_flow(), *(ws_flow(client) for client in clients), killer())
            # A send refused with server_error stays pending: the client sends it again.
            for client in clients:
                await client.resend_pending()
            assert await all_confirmed(clients, 15), describe(clients)
            # The servers keep serving once the kills stop: every request of a fresh round succeeds.
            for number in range(10):
                server = (a, b)[number % 2]
                status, _raw, _type = await asyncio.to_thread(raw_call, server.url, "GET", "/readyz")
                after.append(status)
            expected = expected_messages(
                {client: {lobby} for client in clients}, {**sent_messages(clients), **rest_posts}
            )
            assert await eventually(lambda: has_all(expected), 15), describe(clients)
            figures["db_kills"] = {"seconds": round(time.monotonic() - started, 2)}
            await asyncio.sleep(SETTLE_SECONDS)
        finally:
            await stop_all(clients)

    run(scenario, pool, 120)

    assert not bad_bodies, bad_bodies[:3]
    assert sum(killed) >= KILL_ROUNDS, killed
    assert after == [200] * 10, after
    assert len(rest_posts) == len(rest_client_ids) == 40, statuses
    for client_id in rest_client_ids:
        assert len(message_rows(client_id)) == 1, client_id
    errors = [error for client in clients for error in client.errors]
    # server_error for a send whose connection was killed (resent); rate_limited for the resend burst.
    assert all(error.get("code") in ("server_error", "rate_limited") for error in errors), errors[:3]
    errors = [error for error in errors if error.get("code") == "server_error"]
    assert_delivered(clients)
    sends = assert_one_row_per_client_id(clients) + len(rest_posts)
    figures["db_kills"].update(
        sends=sends,
        killed=killed,
        rest_statuses=dict(statuses),
        rest_retried_after_error=len(server_errors),
        ws_server_errors=len(errors),
        sockets={client.name: client.connected_to for client in clients},
    )
    print(f"\ndatabase connections killed: {figures['db_kills']}")


# --- (d) A client that stops reading while its room is busy ----------------------------------------

SENDER_USERS = 5  # posting over REST at 19/s each, under the 20/s API limit: about 95 messages/s
PER_SENDER_RATE = 19.0
BUSY_SECONDS = 10.0
QUEUE_MAX = 200  # WS_SEND_QUEUE_MAX for the test (2000 by default)
BUFFER_MAX = 16 * 1024  # WS_SEND_BUFFER_MAX for the test (256 KiB by default)
# Random hex (3800 characters), as body and html: about 7.7 KB a frame. The
# kernel buffers about 4 MB for a loopback socket before Daphne's own buffer grows.
PADDING_BYTES = 1900


def test_a_stuck_client_is_dropped_and_catches_up_while_others_get_everything(pool: ServerPool) -> None:
    (a,) = pool.start("a", WS_SEND_QUEUE_MAX=str(QUEUE_MAX), WS_SEND_BUFFER_MAX=str(BUFFER_MAX))
    api = Api(a)
    sid, val, *posters = register(api, "sid", "val", *(f"pam{n}" for n in range(SENDER_USERS)))
    lobby = api.create_room(sid, "Lobby")
    for user in (val, *posters):
        api.join(user, lobby)
    stuck = ChatClient("sid@a", sid, [a], receive_buffer=4096)
    watcher = ChatClient("val@a", val, [a])
    clients = [stuck, watcher]
    posted: dict[int, int] = {}
    figures_here: dict[str, Any] = {}

    def post_for(user: Any) -> None:
        count = int(BUSY_SECONDS * PER_SENDER_RATE)
        began = time.monotonic()
        for number in range(count):
            reply = api.post_message(user, lobby, f"{user.username} {number} {os.urandom(PADDING_BYTES).hex()}")
            posted[reply["id"]] = lobby
            delay = began + (number + 1) / PER_SENDER_RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    async def scenario() -> None:
        try:
            await asyncio.gather(*(client.start() for client in clients))
            stuck.pause_reading()
            started = time.monotonic()
            await asyncio.gather(*(asyncio.to_thread(post_for, user) for user in posters))
            figures_here["posted"] = len(posted)
            figures_here["sent in"] = round(time.monotonic() - started, 2)
            expected = expected_messages({client: {lobby} for client in clients}, posted)
            assert await eventually(lambda: has_all({watcher: expected[watcher]}), 15), describe(clients)
            figures_here["watcher had all"] = round(time.monotonic() - started, 2)
            # The server gave up on the stuck socket meanwhile (a 4009 in its log).
            assert await eventually(lambda: "dropped: too far behind" in a.log_text(), 10), describe(clients)
            figures_here["received before waking"] = len(stuck.events)
            stuck.receive_buffer = None  # its next socket reads normally
            stuck.resume_reading()
            assert await eventually(lambda: has_all(expected), 20), describe(clients)
            figures_here["stuck caught up"] = round(time.monotonic() - started, 2)
            await asyncio.sleep(SETTLE_SECONDS)
        finally:
            await stop_all(clients)

    run(scenario, pool, 90)

    assert len(stuck.connected_to) >= 2 and stuck.resumes >= 1, describe([stuck])
    assert len(watcher.connected_to) == 1, describe([watcher])
    reports = assert_delivered(clients)
    figures["stuck_client"] = {
        "stuck close": stuck.closes[0],
        "received": {report.client: report.received for report in reports},
        **figures_here,
    }
    print(f"\nstuck client: {figures['stuck_client']}")
