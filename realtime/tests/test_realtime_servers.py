"""The delivery promise of docs/websocket.md, against real server processes and the traps it must survive.

Each test starts its own Daphne processes on the test database and a Redis
(channel prefix unique to the test), drives them with websockets clients
that reconnect with their cursor, and ends with the oracle: every client
got every event of its rooms exactly once, in event-id order, and nothing
from rooms its user is not in, as the database says.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from realtime.tests.realtime_support import (
    HOLDING,
    Account,
    Api,
    ChatClient,
    Server,
    ServerPool,
    ThrowawayRedis,
    assert_delivered,
    assert_one_row_per_client_id,
    eventually,
    expected_messages,
    has_all,
    http_status,
    sent_messages,
    stop_all,
)

pytestmark = [pytest.mark.services("postgres", "redis"), pytest.mark.django_db(transaction=True)]

HOLD_MARKER = "HOLD-BEFORE-COMMIT"
HOLD_SECONDS = 2.0
HOLD_APPLICATION = "realtime.tests.hold_asgi:application"
# Longer than the event pump's poll interval (1 s): time enough for a late
# or duplicated frame to show up before the oracle looks.
SETTLE_SECONDS = 1.5


def doorbell_layer(pool: ServerPool) -> Any:
    """Return a channel layer of the servers' kind (same environment, same settings) on their Redis and prefix."""
    from django.conf import settings
    from django.utils.module_loading import import_string

    backend = import_string(settings.CHANNEL_LAYERS["default"]["BACKEND"])
    return backend(hosts=[pool.base_env["REDIS_URL"]], prefix=pool.base_env["CHANNEL_PREFIX"])


def register(api: Api, *names: str) -> list[Account]:
    suffix = uuid.uuid4().hex[:6]
    return [api.register(f"{name}_{suffix}") for name in names]


def run(scenario: Callable[[], Awaitable[None]], pool: ServerPool, timeout: float) -> None:
    """Run an async scenario under a hard time limit; on failure, show the servers' logs."""
    try:
        asyncio.run(asyncio.wait_for(scenario(), timeout))
    except BaseException:
        print(pool.logs())
        raise


async def pump_messages(client: ChatClient, rooms: list[int], count: int, label: str) -> None:
    """Send `count` messages over the client's socket, round-robin over `rooms`, at the client's pace."""
    for number in range(count):
        await client.send(rooms[number % len(rooms)], f"{label} {number}")


async def typing_reaches_everyone(clients: list[ChatClient], room: int, within: float = 5.0) -> bool:
    """Have each client say it is typing in `room`; return whether every other one heard each of them."""
    for client in clients:
        client.typing.clear()
    for client in clients:
        await client.send_frame({"type": "typing", "room": room})

    def heard() -> bool:
        return all(
            {(room, other.account.user_id) for other in clients if other.account.user_id != client.account.user_id}
            <= set(client.typing)
            for client in clients
        )

    return await eventually(heard, within)


async def all_confirmed(clients: list[ChatClient], within: float) -> bool:
    return await eventually(lambda: all(not client.pending for client in clients), within)


def describe(clients: list[ChatClient]) -> str:
    return "\n".join(
        f"{c.name}: sockets {c.connected_to} closes {c.closes[-3:]} pending {len(c.pending)} "
        f"confirmed {len(c.confirmed)} received {len(c.events)} resumes {c.resumes} typing {c.typing[-4:]} "
        f"last event {c.events[-1].at - time.monotonic() if c.events else None} "
        f"errors {c.errors[:3]} failures {c.connect_failures[-3:]} gave_up {c.gave_up}"
        for c in clients
    )


# --- Two processes ----------------------------------------------------------------------------


def test_message_sent_through_one_server_reaches_members_on_the_other_in_order(pool: ServerPool) -> None:
    a, b = pool.start("a", "b")
    api_a, api_b = Api(a), Api(b)
    alice, bob, carol, mallory = register(api_a, "alice", "bob", "carol", "mallory")
    lobby = api_a.create_room(alice, "Lobby")
    api_b.join(bob, lobby)
    api_a.join(carol, lobby)
    elsewhere = api_b.create_room(mallory, "Elsewhere")

    alice_a = ChatClient("alice@a", alice, [a])
    bob_b = ChatClient("bob@b", bob, [b])
    carol_b = ChatClient("carol@b", carol, [b])
    mallory_a = ChatClient("mallory@a", mallory, [a])
    mallory_b = ChatClient("mallory@b", mallory, [b])
    clients = [alice_a, bob_b, carol_b, mallory_a, mallory_b]
    rest_posts: dict[int, int] = {}
    crossing: list[float] = []

    async def scenario() -> None:
        try:
            await asyncio.gather(*(client.start() for client in clients))
            sent_at = time.monotonic()
            client_id = await alice_a.send(lobby, "first, through a")
            assert await eventually(lambda: bool(bob_b.message_ids), 5), describe(clients)
            crossing.append(bob_b.events[0].at - sent_at)
            assert bob_b.events[0].client_id == client_id
            for number in range(15):
                await alice_a.send(lobby, f"alice over the socket on a {number}")
                reply = await asyncio.to_thread(api_b.post_message, bob, lobby, f"bob over REST on b {number}")
                rest_posts[reply["id"]] = lobby
            await mallory_b.send(elsewhere, "mallory's own room")
            assert await all_confirmed(clients, 10), describe(clients)
            messages = {**sent_messages(clients), **rest_posts}
            expected = expected_messages(
                {alice_a: {lobby}, bob_b: {lobby}, carol_b: {lobby}, mallory_a: {elsewhere}, mallory_b: {elsewhere}},
                messages,
            )
            assert await eventually(lambda: has_all(expected), 10), describe(clients)
            await asyncio.sleep(SETTLE_SECONDS)
        finally:
            await stop_all(clients)

    run(scenario, pool, 60)

    assert crossing[0] < 3.0, f"a message took {crossing[0]:.2f}s from a to b"
    reports = assert_delivered(clients)
    assert {report.client: report.received for report in reports} == {
        "alice@a": 31,
        "bob@b": 31,
        "carol@b": 31,
        "mallory@a": 1,
        "mallory@b": 1,
    }
    # The non-member's sockets on both processes heard nothing from the lobby.
    assert all(event.room == elsewhere for event in mallory_a.events + mallory_b.events)
    assert_one_row_per_client_id(clients)


QUIET_SECONDS = 11.0  # two rounds of the core layer's 5 s blocking pop, which shares one read lock


@pytest.mark.parametrize("layer", ["pubsub", "core"])
def test_sockets_stay_open_through_a_quiet_spell(pool: ServerPool, layer: str) -> None:
    a, b = pool.start("a", "b", CHANNEL_LAYER=layer)
    api = Api(a)
    ann, ben, cat = register(api, "ann", "ben", "cat")
    lobby = api.create_room(ann, "Lobby")
    api.join(ben, lobby)
    api.join(cat, lobby)
    clients = [ChatClient("ann@a", ann, [a]), ChatClient("ben@b", ben, [b]), ChatClient("cat@b", cat, [b])]

    async def scenario() -> None:
        try:
            await asyncio.gather(*(client.start() for client in clients))
            await asyncio.sleep(QUIET_SECONDS)
            # The channel layer answers its readiness probe while sockets hold it.
            statuses = [await asyncio.to_thread(http_status, server, "/readyz") for server in (a, b)]
            assert statuses == [200, 200], statuses
            for client in clients:
                await client.send(lobby, f"still here, says {client.name}")
            assert await all_confirmed(clients, 10), describe(clients)
            expected = expected_messages({client: {lobby} for client in clients}, sent_messages(clients))
            assert await eventually(lambda: has_all(expected), 10), describe(clients)
            assert await typing_reaches_everyone(clients, lobby), describe(clients)
        finally:
            await stop_all(clients)

    run(scenario, pool, 60)

    # Nothing to say is no reason to drop a socket: each client kept its first one.
    assert all(len(client.connected_to) == 1 for client in clients), describe(clients)
    assert_delivered(clients)


# --- Kill one process, resume on the other ---------------------------------------------------------

PER_SENDER = 130


def test_clients_of_a_killed_server_resume_on_the_other_with_every_message_once(pool: ServerPool) -> None:
    a, b = pool.start("a", "b")
    api = Api(b)
    users = register(api, *(f"user{number}" for number in range(8)), "outsider")
    outsider = users.pop()
    alpha = api.create_room(users[0], "Alpha")
    for user in users[1:6]:
        api.join(user, alpha)
    beta = api.create_room(users[3], "Beta")
    for user in users[4:8]:
        api.join(user, beta)
    gamma = api.create_room(users[0], "Gamma", private=True)
    for user in (users[2], users[4], users[6]):
        api.add_member(users[0], gamma, user)
    delta = api.create_room(outsider, "Delta")
    members = {alpha: users[0:6], beta: users[3:8], gamma: [users[0], users[2], users[4], users[6]]}
    rooms_of_user = {user.user_id: [room for room, group in members.items() if user in group] for user in users}
    rooms_of_user[outsider.user_id] = [delta]

    # Users 0-3 and the outsider on a, 4-7 on b; user 0 has a second device on b.
    senders = [ChatClient(f"user{n}@a", users[n], [a, b]) for n in range(4)]
    senders += [ChatClient(f"user{n}@b", users[n], [b, a]) for n in range(4, 8)]
    outsider_a = ChatClient("outsider@a", outsider, [a, b])
    second_device = ChatClient("user0@b", users[0], [b, a])
    clients = [*senders, outsider_a, second_device]
    on_a = [client for client in clients if client.servers[0] is a]
    killed_after: list[int] = []
    timeline: dict[str, float] = {}

    async def scenario() -> None:
        try:
            await asyncio.gather(*(client.start() for client in clients))
            started = time.monotonic()
            flows = [
                asyncio.ensure_future(
                    pump_messages(client, rooms_of_user[client.account.user_id], PER_SENDER, client.name)
                )
                for client in senders
            ]
            flows.append(asyncio.ensure_future(pump_messages(outsider_a, [delta], 10, "outsider")))

            def confirmed() -> int:
                return sum(len(client.confirmed) for client in clients)

            assert await eventually(lambda: confirmed() >= 300, 30), describe(clients)
            killed_after.append(confirmed())
            a.kill()
            timeline["killed"] = time.monotonic() - started
            assert await eventually(lambda: all(client.live and client.server is b for client in on_a), 15), describe(
                clients
            )
            timeline["all resumed"] = time.monotonic() - started
            await asyncio.wait_for(asyncio.gather(*flows), 60)
            timeline["all sent"] = time.monotonic() - started
            assert await all_confirmed(clients, 20), describe(clients)
            rooms_of = {client: set(rooms_of_user[client.account.user_id]) for client in clients}
            expected = expected_messages(rooms_of, sent_messages(clients))
            assert await eventually(lambda: has_all(expected), 20), describe(clients)
            timeline["all delivered"] = time.monotonic() - started
            await asyncio.sleep(SETTLE_SECONDS)
        finally:
            await stop_all(clients)

    run(scenario, pool, 150)

    assert not a.alive()
    assert killed_after[0] < 8 * PER_SENDER, "the process died after the flow, not during it"
    for client in on_a:
        # Reconnected to the survivor with its cursor, and resumed there.
        assert client.connected_to[0] == "a" and client.connected_to[-1] == "b", client.connected_to
        assert client.resumes >= 1 and client.resyncs == 0, client.name
    assert all(not client.errors for client in clients), describe(clients)
    reports = assert_delivered(clients)
    sends = assert_one_row_per_client_id(clients)
    assert sends == 8 * PER_SENDER + 10 >= 1000
    retried = sum(client.retried for client in clients)
    print(
        f"\nkill-and-resume: {sends} sends, killed after {killed_after[0]} confirmed, {retried} retried, "
        f"timeline {timeline}, received {[report.received for report in reports]}"
    )


# --- Trap 1: an id is taken at insert, not at commit -------------------------------------------------


def test_resuming_from_the_highest_id_seen_still_delivers_an_event_committed_late(pool: ServerPool) -> None:
    # a writes the held (lower id) transaction, b the quick one; c only reads, so
    # its pump and its resumes never wait behind either writer.
    a, b, c = pool.start(
        "a", "b", "c", application=HOLD_APPLICATION, CHAT_TEST_HOLD_BEFORE_COMMIT=f"{HOLD_MARKER}:{HOLD_SECONDS}"
    )
    api_a, api_b = Api(a), Api(b)
    alice, bob, carol, dave, erin = register(api_a, "alice", "bob", "carol", "dave", "erin")
    lobby = api_a.create_room(alice, "Lobby")
    for user in (bob, carol, dave, erin):
        api_a.join(user, lobby)

    def hop_once(client: ChatClient, received: object) -> Server | None:
        # Leave at the first new event, before any frame behind it is read,
        # and resume elsewhere from the highest id seen: trap 1's victim.
        return b if client.connected_to == ["c"] else None

    watcher = ChatClient("carol@c", carol, [c])
    hopper = ChatClient("dave@c", dave, [c], on_event=hop_once)
    latecomer = ChatClient("erin@c", erin, [c])
    clients = [watcher, hopper, latecomer]
    posted: dict[str, dict[str, object]] = {}
    took: dict[str, float] = {}

    async def post(name: str, api: Api, author: Account, body: str) -> None:
        started = time.monotonic()
        posted[name] = await asyncio.to_thread(api.post_message, author, lobby, body, name)
        took[name] = time.monotonic() - started

    async def scenario() -> None:
        try:
            await asyncio.gather(*(client.start() for client in clients))
            await latecomer.disconnect()
            held = asyncio.ensure_future(post("held", api_a, alice, f"{HOLD_MARKER}: the lower id"))
            # a has taken its event id and holds the transaction open; b commits a higher id meanwhile.
            assert await eventually(lambda: HOLDING in a.log_text(), 10), pool.logs()
            await asyncio.wait_for(post("quick", api_b, bob, "the higher id"), 10)
            # Resume while the held transaction is still open, from the highest id seen.
            await latecomer.reconnect(to=c)
            await asyncio.wait_for(held, 15)
            both = {posted["held"]["id"], posted["quick"]["id"]}
            assert await eventually(lambda: all(both <= client.message_ids for client in clients), 10), describe(
                clients
            )
            await asyncio.sleep(SETTLE_SECONDS)
        finally:
            await stop_all(clients)

    run(scenario, pool, 60)

    # The scenario happened: the held transaction took the lower id and committed last.
    assert took["held"] >= HOLD_SECONDS - 0.2, took
    event_of = {event.message_id: event.event_id for event in watcher.events}
    held_event, quick_event = event_of[posted["held"]["id"]], event_of[posted["quick"]["id"]]
    assert held_event < quick_event
    assert hopper.connected_to == ["c", "b"] and hopper.resumes == 1, describe(clients)
    assert latecomer.resumes == 1, describe(clients)
    for client in clients:
        ids = [event.event_id for event in client.events]
        assert ids.count(held_event) == 1 and ids.count(quick_event) == 1, (client.name, ids)
        assert ids.index(held_event) < ids.index(quick_event), (client.name, ids)
    assert_delivered(clients)


# --- Trap 2: live events published out of order, or not at all ------------------------------------------


def test_without_doorbells_and_with_doorbells_rung_out_of_order_clients_get_every_event_in_order(
    pool: ServerPool,
) -> None:
    # No process rings on commit: delivery rests on the pumps' poll. The test
    # then rings bogus doorbells (ids descending, at random moments).
    a, b = pool.start("a", "b", REALTIME_DOORBELL="0")
    api = Api(a)
    ann, ben, cat, dan = register(api, "ann", "ben", "cat", "dan")
    lobby = api.create_room(ann, "Lobby")
    side = api.create_room(cat, "Side")
    for user in (ben, cat, dan):
        api.join(user, lobby)
    api.join(dan, side)
    rooms_of_user = {ann.user_id: [lobby], ben.user_id: [lobby], cat.user_id: [lobby, side], dan.user_id: [lobby, side]}
    clients = [
        ChatClient("ann@a", ann, [a]),
        ChatClient("ben@b", ben, [b]),
        ChatClient("cat@a", cat, [a]),
        ChatClient("dan@b", dan, [b]),
    ]
    latency: list[float] = []

    async def ring_out_of_order(stop: asyncio.Event) -> None:
        from realtime.delivery import DOORBELL_GROUP

        layer = doorbell_layer(pool)
        bogus = 10**9
        try:
            for _ in range(400):
                if stop.is_set():
                    break
                bogus -= random.randint(1, 1000)
                await layer.group_send(DOORBELL_GROUP, {"type": "events.doorbell", "id": bogus})
                await asyncio.sleep(random.uniform(0.01, 0.3))
        finally:
            # Close connections only: the core layer's flush() would delete the servers' groups.
            await (layer.close_pools() if hasattr(layer, "close_pools") else layer.flush())

    rooms_of = {client: set(rooms_of_user[client.account.user_id]) for client in clients}

    async def flow(label: str) -> None:
        await asyncio.wait_for(
            asyncio.gather(
                *(
                    pump_messages(client, rooms_of_user[client.account.user_id], 15, f"{client.name} {label}")
                    for client in clients
                )
            ),
            30,
        )
        assert await all_confirmed(clients, 15), describe(clients)
        expected = expected_messages(rooms_of, sent_messages(clients))
        assert await eventually(lambda: has_all(expected), 10), describe(clients)

    async def scenario() -> None:
        stop = asyncio.Event()
        ringer = None
        try:
            await asyncio.gather(*(client.start() for client in clients))
            # Nothing rings at all: every event comes from the pumps' poll.
            await flow("unrung")
            # Wake-ups at random moments that name events out of order.
            ringer = asyncio.ensure_future(ring_out_of_order(stop))
            await flow("rung out of order")
            await asyncio.sleep(SETTLE_SECONDS)
        finally:
            stop.set()
            await stop_all(clients)
            if ringer is not None:
                await asyncio.wait_for(ringer, 10)
        for client in clients:
            latency.extend(client.confirmed_at[key] - client.sent_at[key] for key in client.confirmed)

    run(scenario, pool, 90)

    assert all(not client.errors and len(client.connected_to) == 1 for client in clients), describe(clients)
    assert_delivered(clients)
    assert_one_row_per_client_id(clients)
    print(f"\nno doorbells: {len(latency)} sends, slowest round trip {max(latency):.2f}s")


# --- Trap 3: the channel layer forgets everything ----------------------------------------------------------

RESTART_AT = 3.0
CANARY_AFTER_RESTART = 13.0


@pytest.mark.parametrize("layer", ["pubsub", "core"])
def test_sockets_keep_receiving_through_a_redis_restart(
    pool_on_own_redis: ServerPool, own_redis: ThrowawayRedis, layer: str
) -> None:
    pool = pool_on_own_redis
    a, b = pool.start("a", "b", CHANNEL_LAYER=layer)
    api = Api(a)
    ann, ben, cat, dan, eve = register(api, "ann", "ben", "cat", "dan", "eve")
    lobby = api.create_room(ann, "Lobby")
    for user in (ben, cat, dan):
        api.join(user, lobby)
    hideout = api.create_room(eve, "Hideout")
    rooms_of_user = {user.user_id: [lobby] for user in (ann, ben, cat, dan)}
    rooms_of_user[eve.user_id] = [hideout]
    clients = [
        ChatClient("ann@a", ann, [a, b], rate=4),
        ChatClient("ben@a", ben, [a, b], rate=4),
        ChatClient("cat@b", cat, [b, a], rate=4),
        ChatClient("dan@b", dan, [b, a], rate=4),
        ChatClient("eve@b", eve, [b, a], rate=4),
    ]
    canaries: dict[ChatClient, str] = {}
    canary_took: list[float] = []

    async def flow(client: ChatClient, stop: asyncio.Event) -> None:
        room = rooms_of_user[client.account.user_id][0]
        for number in range(400):
            if stop.is_set():
                return
            await client.send(room, f"{client.name} {number}")

    async def scenario() -> None:
        try:
            await asyncio.gather(*(client.start() for client in clients))
            stop = asyncio.Event()
            flows = [asyncio.ensure_future(flow(client, stop)) for client in clients]
            await asyncio.sleep(RESTART_AT)
            await asyncio.to_thread(own_redis.restart)
            restarted = time.monotonic()
            await asyncio.sleep(CANARY_AFTER_RESTART)
            for client in clients:
                room = rooms_of_user[client.account.user_id][0]
                canaries[client] = await client.send(room, f"canary from {client.name}")
            sent = time.monotonic()
            assert await eventually(
                lambda: all(client_id in client.confirmed for client, client_id in canaries.items()), 10
            ), describe(clients)
            canary_ids = {client.confirmed[client_id]: client for client, client_id in canaries.items()}
            rooms_of = {client: set(rooms_of_user[client.account.user_id]) for client in clients}
            by_room = {message_id: client.sent_rooms[canaries[client]] for message_id, client in canary_ids.items()}
            expected_canaries = expected_messages(rooms_of, by_room)
            assert await eventually(lambda: has_all(expected_canaries), 10), describe(clients)
            canary_took.append(time.monotonic() - sent)
            assert time.monotonic() - restarted >= CANARY_AFTER_RESTART
            # Subscribed again: what travels only through the channel layer gets through too.
            lobby_clients = [client for client in clients if rooms_of[client] == {lobby}]
            assert await typing_reaches_everyone(lobby_clients, lobby), describe(clients)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*flows), 15)
            assert await all_confirmed(clients, 15), describe(clients)
            expected = expected_messages(rooms_of, sent_messages(clients))
            assert await eventually(lambda: has_all(expected), 15), describe(clients)
            await asyncio.sleep(SETTLE_SECONDS)
        finally:
            await stop_all(clients)

    run(scenario, pool, 90)

    assert own_redis.restarts == 1
    assert all(client.resyncs == 0 for client in clients), describe(clients)
    assert all(not client.errors for client in clients), describe(clients)
    reports = assert_delivered(clients)
    assert_one_row_per_client_id(clients)
    print(
        f"\nredis restart: canaries reached every member in {canary_took[0]:.2f}s; sockets per client "
        f"{[len(client.connected_to) for client in clients]}; received {[report.received for report in reports]}"
    )
