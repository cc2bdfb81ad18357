"""What one account may hold and send, whatever number of sockets it opens.

- At most WS_MAX_SOCKETS_PER_USER sockets at once, counted on every process
  by presence: one more is accepted, told `too_many_sockets` and closed with
  4008.
- One sending budget (USER_SEND_RATE) for `message.send` and `typing` on all
  the user's sockets and `POST rooms/{id}/messages/`: past it, an `error`
  `rate_limited` with `retry_after` on a socket and a 429 with Retry-After
  over REST.
- A resume with more than RESUME_MAX_EVENTS events to replay gets
  `resync.required` instead of the replay.

The last test holds the first two to account across two server processes.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
import websockets.asyncio.client as websockets_client
import websockets.exceptions as websockets_exceptions

from core import ratelimit
from messaging.models import Message
from realtime.tests.realtime_support import Api, ServerPool
from realtime.tests.test_consumers import (  # noqa: F401 (fixtures: used by name)
    _fresh_realtime_state,
    asynctest,
    call,
    connect,
    handshake,
    newest_event_id,
    rest,
    say,
)
from rooms import services as room_services

pytestmark = pytest.mark.django_db(transaction=True)

CLOSE_TOO_MANY = 4008


@pytest.fixture
def frozen_budget_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hold the budget's clock still: its fixed window must not roll over in the middle of a test."""
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: 1_800_000_000.0))


def message_count(author: Any) -> int:
    return Message.objects.filter(author=author).count()


# --- Sockets per user ---------------------------------------------------------------------


@asynctest
async def test_a_socket_past_the_users_cap_is_refused_with_4008_and_the_others_stay(alice, bob, settings) -> None:
    settings.WS_MAX_SOCKETS_PER_USER = 3
    sockets = [await connect(alice) for _ in range(3)]
    bob_socket = await connect(bob)

    refused, connected = await handshake([(b"authorization", (await call(_bearer_value, alice)))])
    assert connected is True  # accepted, so that the client can read why it is closed
    code, frames = await refused.close_code()
    assert code == CLOSE_TOO_MANY
    assert [frame["type"] for frame in frames] == ["error"]
    assert frames[0]["code"] == "too_many_sockets"

    for socket in [*sockets, bob_socket]:
        await socket.pong()
    # A closed socket makes room for a new one; the refused one took none.
    await sockets.pop().disconnect()
    await connect(alice)


def _bearer_value(user: Any) -> bytes:
    from accounts.services import tokens_for

    return f"Bearer {tokens_for(user)['access']}".encode()


# --- The sending budget ----------------------------------------------------------------------


@asynctest
async def test_one_budget_covers_every_socket_of_a_user_and_rest_posting(
    alice, bob, lobby, settings, client_for, frozen_budget_clock
) -> None:
    settings.USER_SEND_RATE = "5/10s"
    first, second = await connect(alice), await connect(alice)

    async def send(socket: Any, number: int) -> None:
        client_id = f"budget-{number}"
        await socket.send({"type": "message.send", "room": lobby.pk, "body": f"m{number}", "client_id": client_id})

    await send(first, 1)
    await send(second, 2)
    await send(first, 3)
    await send(second, 4)
    status, _ = await rest(client_for, alice, "post", f"rooms/{lobby.pk}/messages/", {"body": "m5"})
    assert status == 201
    # The sockets' sends and the REST post commit in whatever order they finish.
    for socket in (first, second):
        frames = [await socket.recv() for _ in range(5)]
        assert {frame["message"]["body"] for frame in frames} == {"m1", "m2", "m3", "m4", "m5"}

    # The sixth, from any socket or over REST, is refused and stores nothing.
    error = await first.error({"type": "message.send", "room": lobby.pk, "body": "m6", "client_id": "budget-6"})
    assert error["code"] == "rate_limited"
    assert error["client_id"] == "budget-6"
    assert 0 < error["retry_after"] <= 10

    def post_over_rest() -> Any:
        return client_for(alice).post(f"/api/v1/rooms/{lobby.pk}/messages/", {"body": "m7"}, format="json")

    response = await call(post_over_rest)
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 10
    assert (await second.error({"type": "typing", "room": lobby.pk}))["code"] == "rate_limited"
    assert await call(message_count, alice) == 5

    # Someone else's budget is their own.
    bob_socket = await connect(bob)
    await bob_socket.send({"type": "message.send", "room": lobby.pk, "body": "bob's", "client_id": "bob-1"})
    await bob_socket.until_message("bob's")


@asynctest
async def test_typing_notices_spend_the_same_budget_as_messages(alice, lobby, settings, frozen_budget_clock) -> None:
    settings.USER_SEND_RATE = "3/10s"
    socket = await connect(alice)
    for _ in range(3):
        await socket.send({"type": "typing", "room": lobby.pk})
    await socket.pong()  # the three went through without an error
    error = await socket.error({"type": "message.send", "room": lobby.pk, "body": "too many", "client_id": "t-1"})
    assert error["code"] == "rate_limited"
    assert await call(message_count, alice) == 0


@asynctest
async def test_the_budget_opens_again_in_the_next_window(alice, lobby, settings, monkeypatch) -> None:
    settings.USER_SEND_RATE = "1/10s"
    now = [1_800_000_000.0]
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: now[0]))
    socket = await connect(alice)
    await socket.send({"type": "message.send", "room": lobby.pk, "body": "first", "client_id": "w-1"})
    await socket.until_message("first")
    now[0] += 4
    error = await socket.error({"type": "message.send", "room": lobby.pk, "body": "early", "client_id": "w-2"})
    assert error["retry_after"] == 6
    now[0] += 6
    await socket.send({"type": "message.send", "room": lobby.pk, "body": "next window", "client_id": "w-3"})
    await socket.until_message("next window")


def test_rest_posting_alone_is_held_to_the_budget(alice, lobby, settings, client_for, frozen_budget_clock) -> None:
    settings.USER_SEND_RATE = "3/m"
    client = client_for(alice)
    statuses = [
        client.post(f"/api/v1/rooms/{lobby.pk}/messages/", {"body": f"r{n}"}, format="json").status_code
        for n in range(4)
    ]
    assert statuses == [201, 201, 201, 429]


# --- Bounded resume -----------------------------------------------------------------------------


@asynctest
async def test_a_resume_with_more_events_than_resume_max_events_gets_resync_required(
    alice, bob, lobby, settings
) -> None:
    settings.RESUME_MAX_EVENTS = 5
    start = await call(newest_event_id)
    for number in range(6):
        await say(lobby, bob, f"missed {number}")
    socket = await connect(alice, query=f"?last_event_id={start}")
    assert await socket.recv() == {"type": "resync.required"}
    # Then live, from the hello's cursor on: no replay came first.
    await say(lobby, bob, "live")
    frame = await socket.recv()
    assert frame["type"] == "message.new"
    assert frame["message"]["body"] == "live"


@asynctest
async def test_a_resume_within_resume_max_events_replays_and_unseen_rooms_do_not_count(
    alice, bob, mallory, lobby, settings
) -> None:
    settings.RESUME_MAX_EVENTS = 5
    elsewhere = await call(room_services.room_create, creator=mallory, name="Elsewhere")
    start = await call(newest_event_id)
    for number in range(10):
        await say(elsewhere, mallory, f"not for alice {number}")
    for number in range(5):
        await say(lobby, bob, f"missed {number}")
    socket = await connect(alice, query=f"?last_event_id={start}")
    frames = await socket.until(lambda frame: frame["type"] == "resume.done")
    assert [frame["message"]["body"] for frame in frames[:-1]] == [f"missed {number}" for number in range(5)]


# --- Across server processes ---------------------------------------------------------------------


@pytest.mark.services("postgres", "redis")
def test_the_socket_cap_and_the_budget_hold_across_server_processes(pool: ServerPool) -> None:
    # A day's window: it cannot roll over while the test runs (unless at midnight UTC).
    a, b = pool.start("a", "b", WS_MAX_SOCKETS_PER_USER="2", USER_SEND_RATE="4/24h")
    api = Api(a)
    suffix = uuid.uuid4().hex[:6]
    alice = api.register(f"alice_{suffix}")
    room = api.create_room(alice, "Lobby")
    headers = {"Authorization": f"Bearer {alice.access}"}

    async def next_frame(socket: Any, kind: str) -> dict[str, Any]:
        while True:
            frame = json.loads(await asyncio.wait_for(socket.recv(), 10))
            if frame["type"] == kind:
                return frame

    async def scenario() -> None:
        async with (
            websockets_client.connect(a.ws_url, additional_headers=headers) as on_a,
            websockets_client.connect(b.ws_url, additional_headers=headers) as on_b,
        ):
            await next_frame(on_a, "hello")
            await next_frame(on_b, "hello")
            # A third socket, on either process, is one too many.
            async with websockets_client.connect(a.ws_url, additional_headers=headers) as third:
                error = await next_frame(third, "error")
                assert error["code"] == "too_many_sockets"
                with pytest.raises(websockets_exceptions.ConnectionClosed):
                    await asyncio.wait_for(third.recv(), 10)
                assert third.close_code == CLOSE_TOO_MANY

            # Four sends through both processes and REST spend the budget of four.
            for number, socket in enumerate((on_a, on_b, on_a), start=1):
                frame = {"type": "message.send", "room": room, "body": f"s{number}", "client_id": f"s-{number}"}
                await socket.send(json.dumps(frame))
                await next_frame(socket, "message.new")
            assert Api(b).call("POST", f"rooms/{room}/messages/", {"body": "r4"}, token=alice.access)[0] == 201
            await on_b.send(json.dumps({"type": "message.send", "room": room, "body": "s5", "client_id": "s-5"}))
            assert (await next_frame(on_b, "error"))["code"] == "rate_limited"
            status, _ = Api(a).call("POST", f"rooms/{room}/messages/", {"body": "r6"}, token=alice.access)
            assert status == 429

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
    except BaseException:
        print(pool.logs())
        raise
    assert Message.objects.filter(room_id=room).count() == 4


@pytest.mark.parametrize("rate", ["30", "0/10s", "thirty/10s", "30/10 days", ""])
def test_a_send_rate_that_does_not_parse_fails_the_system_check(settings: Any, rate: str) -> None:
    from core.checks import send_rate

    settings.USER_SEND_RATE = rate
    assert [error.id for error in send_rate()] == ["chat.E002"]
    settings.USER_SEND_RATE = "30/10s"
    assert send_rate() == []
