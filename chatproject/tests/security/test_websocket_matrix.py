"""Every WebSocket frame type × every kind of caller → the outcome docs/websocket.md gives (issue 5, item 5).

The frame types come from the consumer's dispatch table
(`realtime.consumers.FRAME_HANDLERS`): a new frame type fails
`test_every_frame_type_is_in_the_matrix` until its row is written here.

An outcome is "ok" (no error frame before the pong that follows it) or the
`error` frame's code. Anonymous callers never get a socket: the handshake
is refused before it is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from accounts.models import User
from chatproject.tests.security.ws import (  # noqa: F401 - fresh_realtime is a fixture
    ORIGIN,
    Socket,
    asynctest,
    call,
    connect,
    fresh_realtime,
    handshake_refused,
)
from conftest import PASSWORD
from messaging.models import Message
from messaging.services import message_post
from realtime import consumers
from rooms import services as rooms
from rooms.models import Membership, Room

pytestmark = pytest.mark.django_db(transaction=True)

CALLERS = ("outsider", "other_member", "member", "admin", "owner", "staff")
VARIANTS = ("public", "private")


@dataclass(frozen=True)
class Row:
    public: str
    private: str

    def expected(self, variant: str) -> dict[str, str]:
        outcomes = (self.public if variant == "public" else self.private).split()
        assert len(outcomes) == len(CALLERS), outcomes
        return dict(zip(CALLERS, outcomes, strict=True))


# Callers:        outsider   other_member member admin owner staff
MATRIX = {
    # Posting is the REST POST: outsiders of a public channel are forbidden, of a private one told nothing.
    "message.send": Row(
        "forbidden forbidden ok ok ok forbidden",
        "not_found not_found ok ok ok not_found",
    ),
    "read": Row(
        "forbidden forbidden ok ok ok forbidden",
        "not_found not_found ok ok ok not_found",
    ),
    # Typing goes only to rooms the socket is subscribed to, by membership.
    "typing": Row(
        "not_found not_found ok ok ok not_found",
        "not_found not_found ok ok ok not_found",
    ),
    "ping": Row(
        "ok ok ok ok ok ok",
        "ok ok ok ok ok ok",
    ),
}


def test_every_frame_type_is_in_the_matrix() -> None:
    assert set(consumers.FRAME_HANDLERS) == set(MATRIX), (
        f"frame types without a row: {sorted(set(consumers.FRAME_HANDLERS) - set(MATRIX))}; "
        f"rows for frame types that no longer exist: {sorted(set(MATRIX) - set(consumers.FRAME_HANDLERS))}"
    )


@dataclass
class World:
    users: dict[str, User]
    rooms: dict[str, Room]
    messages: dict[str, Message]


def _make(username: str, **extra: Any) -> User:
    return User.objects.create_user(username=username, email=f"{username}@example.com", password=PASSWORD, **extra)


def _build_world() -> World:
    people = {
        "owner": _make("alice"),
        "admin": _make("carol"),
        "member": _make("bob"),
        "outsider": _make("mallory"),
        "other_member": _make("olivia"),
        "staff": _make("sam", is_staff=True),
    }
    elsewhere = rooms.room_create(creator=_make("oscar"), name="Elsewhere")
    rooms.room_join(user=people["other_member"], room=elsewhere)
    made, messages = {}, {}
    for variant in VARIANTS:
        room = rooms.room_create(creator=people["owner"], name=f"Room {variant}", visibility=variant)
        for role in ("admin", "member"):
            rooms.member_add(actor=people["owner"], room=room, user_id=people[role].pk)
        rooms.member_set_role(actor=people["owner"], room=room, user_id=people["admin"].pk, role="admin")
        made[variant] = room
        messages[variant], _ = message_post(room=room, author=people["owner"], body=f"hello {variant}")
    return World(users=people, rooms=made, messages=messages)


def frame_for(kind: str, world: World, variant: str, caller: str) -> dict[str, Any]:
    room = world.rooms[variant].pk
    if kind == "message.send":
        return {"type": kind, "room": room, "body": f"from {caller}", "client_id": f"{caller}-{variant}"}
    if kind == "read":
        return {"type": kind, "room": room, "message_id": world.messages[variant].pk}
    if kind == "typing":
        return {"type": kind, "room": room}
    if kind == "ping":
        return {"type": kind}
    raise AssertionError(f"the matrix does not know how to build a {kind!r} frame")


async def outcome(socket: Socket, frame: dict[str, Any]) -> str:
    """Send `frame`, then a ping; return the error code that came before the pong, or "ok"."""
    await socket.send(frame)
    if frame["type"] != "ping":
        await socket.send({"type": "ping"})
    result = "ok"
    while True:
        reply = await socket.recv()
        if reply["type"] == "error":
            result = str(reply["code"])
        if reply["type"] == "pong":
            return result


@pytest.mark.parametrize("kind", sorted(MATRIX))
@asynctest
async def test_frame_gets_each_caller_the_outcome_the_matrix_says(fresh_realtime: None, kind: str) -> None:  # noqa: F811
    world = await call(_build_world)
    mismatches = []
    for variant in VARIANTS:
        for caller, expected in MATRIX[kind].expected(variant).items():
            socket = await connect(world.users[caller])
            before = await call(Message.objects.filter(room=world.rooms[variant]).count)
            got = await outcome(socket, frame_for(kind, world, variant, caller))
            after = await call(Message.objects.filter(room=world.rooms[variant]).count)
            await socket.disconnect()
            if got != expected:
                mismatches.append(f"{variant:8} {caller:13} expected {expected}, got {got}")
            if kind == "message.send" and (after > before) != (expected == "ok"):
                mismatches.append(f"{variant:8} {caller:13} message written: {after > before}")
    assert not mismatches, f"{kind}:\n" + "\n".join(mismatches)


@asynctest
async def test_anonymous_callers_never_get_a_socket(fresh_realtime: None) -> None:  # noqa: F811
    assert await handshake_refused([ORIGIN])
    assert await handshake_refused([(b"authorization", b"Bearer not-a-token"), ORIGIN])


@asynctest
async def test_a_foreign_origin_never_gets_a_socket_even_with_credentials(fresh_realtime: None) -> None:  # noqa: F811
    from accounts.services import tokens_for

    user = await call(_make, "victim")
    token = await call(lambda: tokens_for(user)["access"])
    headers = [(b"authorization", f"Bearer {token}".encode()), (b"origin", b"https://evil.example")]
    assert await handshake_refused(headers)


@asynctest
async def test_a_member_removed_mid_socket_loses_the_room_at_once(fresh_realtime: None) -> None:  # noqa: F811
    world = await call(_build_world)
    socket = await connect(world.users["member"])
    room = world.rooms["private"]
    assert await outcome(socket, frame_for("typing", world, "private", "member")) == "ok"
    await call(rooms.member_kick, actor=world.users["owner"], room=room, user_id=world.users["member"].pk)
    assert not await call(Membership.objects.filter(room=room, user=world.users["member"]).exists)
    # The kick reaches the socket as room.removed; from then on the room is out of reach.
    while (await socket.recv())["type"] != "room.removed":
        pass
    assert await outcome(socket, frame_for("typing", world, "private", "member")) == "not_found"
    assert await outcome(socket, frame_for("message.send", world, "private", "member")) == "not_found"
