"""The admin goes through the services, so open sockets, the event record and the moderation log see it (trust issue).

Each test drives the real admin (the test client posting changelist actions
and change/add forms as a staff user) and asserts what the people concerned
see on their open sockets, what the event record holds and what the
moderation log says. "Stops receiving" is shown without sleeping: a later
event that the socket does receive proves the earlier one never came, since
a socket gets events in id order.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from accounts.models import User
from chatproject.tests.security.ws import Socket, asynctest, call, connect, fresh_realtime  # noqa: F401 - fixture
from rooms import services as rooms
from rooms.models import Membership

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def root(make_user: Any) -> User:
    return make_user("root", is_staff=True, is_superuser=True)


def admin_post(root: User, path: str, data: dict[str, Any]) -> Any:
    client = Client()
    client.force_login(root)
    return client.post(path, data, follow=True)


def act(root: User, model: str, action: str, ids: list[int], reason: str = "as the log says") -> Any:
    return admin_post(root, f"/admin/{model}/", {"action": action, "_selected_action": ids, "reason": reason})


async def frames_until(socket: Socket, frame_type: str, **fields: Any) -> list[dict[str, Any]]:
    """Return the frames up to and including the first of `frame_type` whose fields match."""
    frames = []
    while True:
        frame = await socket.recv()
        frames.append(frame)
        if frame["type"] == frame_type and all(frame.get(name) == value for name, value in fields.items()):
            return frames


async def said(socket: Socket, body: str) -> list[dict[str, Any]]:
    frames = []
    while True:
        frame = await socket.recv()
        frames.append(frame)
        if frame["type"] == "message.new" and frame["message"]["body"] == body:
            return frames


# --- A channel always has an owner, and the heir is told ------------------------------------------------


@asynctest
async def test_the_heir_of_an_owner_who_leaves_gets_the_room_with_my_role_owner(
    fresh_realtime: None,  # noqa: F811 - the fixture imported above
    lobby: Any,
    alice: Any,
    carol: Any,
) -> None:
    heir = await connect(carol)

    await call(rooms.room_leave, user=alice, room=lobby)

    frames = await frames_until(heir, "room.updated")
    assert frames[-1]["room"]["id"] == lobby.pk
    assert frames[-1]["room"]["my_role"] == "owner"


@asynctest
async def test_deactivating_the_last_owner_in_the_admin_tells_the_heir_at_once(
    fresh_realtime: None,  # noqa: F811
    lobby: Any,
    alice: Any,
    carol: Any,
    root: User,
) -> None:
    heir = await connect(carol)

    await call(act, root, "accounts/user", "deactivate_accounts", [alice.pk], "left the company")

    frames = await frames_until(heir, "room.updated")
    assert (frames[-1]["room"]["id"], frames[-1]["room"]["my_role"]) == (lobby.pk, "owner")
    assert await call(lambda: Membership.objects.get(room=lobby, user=carol).role) == "owner"
