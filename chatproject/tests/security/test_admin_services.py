"""The admin goes through the services, so open sockets, the event record and the moderation log see it (trust issue).

Each test drives the real admin (the test client posting changelist actions
and change/add forms as a staff user) and asserts what the people concerned
see on their open sockets, what the event record holds and what the
moderation log says. "Stops receiving" is shown without sleeping: a later
event that the socket does receive proves the earlier one never came, since
a socket gets events in id order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.models import ModerationAction, User
from chatproject.tests.security.admin_forms import act, add, change, form_errors, staff_client
from chatproject.tests.security.ws import Socket, asynctest, call, connect, fresh_realtime  # noqa: F401 - fixture
from messaging.models import Message, Reaction
from messaging.services import message_post, reaction_add
from rooms import services as rooms
from rooms.events import Event
from rooms.models import Membership, Room

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def root(make_user: Any) -> User:
    return make_user("root", is_staff=True, is_superuser=True)


def run_admin(root: User, drive: Callable[[Client], Any]) -> Any:
    """Drive the admin as `root` from the test's thread (the sockets' loop keeps running)."""
    return call(lambda: drive(staff_client(root)))


async def frames_until(socket: Socket, frame_type: str, **fields: Any) -> list[dict[str, Any]]:
    """Return the frames up to and including the first of `frame_type` whose fields match."""
    frames = []
    while True:
        frame = await socket.recv()
        frames.append(frame)
        if frame["type"] == frame_type and all(frame.get(name) == value for name, value in fields.items()):
            return frames


async def said(socket: Socket, body: str) -> list[dict[str, Any]]:
    """Return the frames up to and including the message.new of `body`."""
    frames = []
    while True:
        frame = await socket.recv()
        frames.append(frame)
        if frame["type"] == "message.new" and frame["message"]["body"] == body:
            return frames


def bodies(frames: list[dict[str, Any]]) -> list[str]:
    return [frame["message"]["body"] for frame in frames if frame["type"] == "message.new"]


def log(action: str) -> ModerationAction:
    entries = list(ModerationAction.objects.filter(action=action))
    assert len(entries) == 1, f"{len(entries)} {action} entries"
    return entries[0]


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

    await run_admin(root, lambda admin: act(admin, "accounts/user", "deactivate_accounts", [alice.pk], "left"))

    frames = await frames_until(heir, "room.updated")
    assert (frames[-1]["room"]["id"], frames[-1]["room"]["my_role"]) == (lobby.pk, "owner")
    assert await call(lambda: Membership.objects.get(room=lobby, user=carol).role) == "owner"


# --- Memberships ---------------------------------------------------------------------------------------


@asynctest
async def test_removing_a_member_in_the_admin_tells_them_and_they_stop_receiving_the_private_room(
    fresh_realtime: None,  # noqa: F811
    lobby: Any,
    secret: Any,
    alice: Any,
    bob: Any,
    root: User,
) -> None:
    await call(rooms.member_add, actor=alice, room=secret, user_id=bob.pk)
    membership = await call(Membership.objects.get, room=secret, user=bob)
    socket = await connect(bob)

    await run_admin(root, lambda admin: act(admin, "rooms/membership", "remove_members", [membership.pk], "leak"))

    await frames_until(socket, "room.removed", room=secret.pk)
    await call(message_post, room=secret, author=alice, body="the plan, privately")
    await call(message_post, room=lobby, author=alice, body="hello lobby")
    assert bodies(await said(socket, "hello lobby")) == ["hello lobby"]
    entry = await call(log, ModerationAction.Kind.MEMBER_KICK)
    assert (entry.actor_id, entry.target_user_id, entry.room_id, entry.reason, entry.via) == (
        root.pk,
        bob.pk,
        secret.pk,
        "leak",
        "admin",
    )


def test_a_plain_delete_of_a_membership_is_not_offered(secret: Any, alice: Any, bob: Any, root: User) -> None:
    rooms.member_add(actor=alice, room=secret, user_id=bob.pk)
    membership = Membership.objects.get(room=secret, user=bob)
    admin = staff_client(root)

    act(admin, "rooms/membership", "delete_selected", [membership.pk], post="yes")

    assert admin.get(f"/admin/rooms/membership/{membership.pk}/delete/").status_code == 403
    assert Membership.objects.filter(pk=membership.pk).exists()


@asynctest
async def test_adding_a_member_in_the_admin_sends_room_added_and_is_logged(
    fresh_realtime: None,  # noqa: F811
    secret: Any,
    alice: Any,
    bob: Any,
    root: User,
) -> None:
    socket = await connect(bob)

    response = await run_admin(
        root, lambda admin: add(admin, "rooms/membership", room=secret.pk, user=bob.pk, reason="needs access")
    )

    assert form_errors(response) is None
    frames = await frames_until(socket, "room.added")
    assert (frames[-1]["room"]["id"], frames[-1]["room"]["my_role"]) == (secret.pk, "member")
    await call(message_post, room=secret, author=alice, body="welcome")
    await said(socket, "welcome")
    entry = await call(log, ModerationAction.Kind.MEMBER_ADD)
    assert (entry.target_user_id, entry.room_id, entry.reason) == (bob.pk, secret.pk, "needs access")


def test_a_member_the_service_refuses_is_shown_again_with_why(lobby: Any, alice: Any, mallory: Any, root: User) -> None:
    rooms.member_ban(actor=alice, room=lobby, user_id=mallory.pk)

    response = add(staff_client(root), "rooms/membership", room=lobby.pk, user=mallory.pk, reason="try again")

    assert "lift the ban first" in str(form_errors(response)["user"])
    assert not Membership.objects.filter(room=lobby, user=mallory).exists()


@asynctest
async def test_a_role_changed_in_the_admin_reaches_the_member_and_is_logged(
    fresh_realtime: None,  # noqa: F811
    lobby: Any,
    bob: Any,
    root: User,
) -> None:
    membership = await call(Membership.objects.get, room=lobby, user=bob)
    socket = await connect(bob)

    response = await run_admin(
        root, lambda admin: change(admin, "rooms/membership", membership.pk, role="admin", reason="trusted")
    )

    assert form_errors(response) is None
    frames = await frames_until(socket, "room.updated")
    assert (frames[-1]["room"]["id"], frames[-1]["room"]["my_role"]) == (lobby.pk, "admin")
    entry = await call(log, ModerationAction.Kind.MEMBER_ROLE)
    assert (entry.target_user_id, entry.detail, entry.reason) == (bob.pk, "member → admin", "trusted")


# --- Rooms ---------------------------------------------------------------------------------------------


@asynctest
async def test_renaming_a_room_in_the_admin_is_pushed_to_members_and_logged(
    fresh_realtime: None,  # noqa: F811
    lobby: Any,
    bob: Any,
    root: User,
) -> None:
    socket = await connect(bob)

    response = await run_admin(root, lambda admin: change(admin, "rooms/room", lobby.pk, name="Hall", reason="clash"))

    assert form_errors(response) is None
    frames = await frames_until(socket, "room.updated")
    assert (frames[-1]["room"]["name"], frames[-1]["room"]["slug"]) == ("Hall", "hall")
    entry = await call(log, ModerationAction.Kind.ROOM_UPDATE)
    assert (entry.room_id, entry.detail, entry.reason) == (lobby.pk, "name: 'Lobby' → 'Hall'", "clash")


@asynctest
async def test_making_a_private_room_public_in_the_admin_is_pushed_and_logged(
    fresh_realtime: None,  # noqa: F811
    secret: Any,
    alice: Any,
    root: User,
) -> None:
    socket = await connect(alice)

    response = await run_admin(
        root, lambda admin: change(admin, "rooms/room", secret.pk, visibility="public", reason="open to all")
    )

    assert form_errors(response) is None
    frames = await frames_until(socket, "room.updated")
    assert frames[-1]["room"]["visibility"] == "public"
    entry = await call(log, ModerationAction.Kind.ROOM_UPDATE)
    assert (entry.room_id, entry.detail, entry.reason) == (secret.pk, "visibility: private → public", "open to all")


def test_a_rename_the_service_refuses_is_shown_again_with_why(lobby: Any, secret: Any, root: User) -> None:
    response = change(staff_client(root), "rooms/room", secret.pk, name="Lobby", reason="merge")

    assert "already exists" in str(form_errors(response)["name"])
    secret.refresh_from_db()
    assert secret.name == "Secret"
    assert not ModerationAction.objects.exists()


@asynctest
async def test_deleting_a_room_in_the_admin_tells_the_members_and_keeps_its_history(
    fresh_realtime: None,  # noqa: F811
    lobby: Any,
    alice: Any,
    bob: Any,
    root: User,
) -> None:
    await call(message_post, room=lobby, author=alice, body="before")
    events_before = await call(Event.objects.filter(room=lobby).count)
    socket = await connect(bob)

    await run_admin(root, lambda admin: act(admin, "rooms/room", "delete_rooms", [lobby.pk], "abandoned"))

    await frames_until(socket, "room.removed", room=lobby.pk)
    room = await call(Room.objects.get, pk=lobby.pk)
    assert room.deleted_at is not None
    assert await call(Event.objects.filter(room=lobby).count) == events_before + 1
    assert await call(Message.objects.filter(room=lobby).count) == 1
    entry = await call(log, ModerationAction.Kind.ROOM_DELETE)
    assert (entry.room_id, entry.reason) == (lobby.pk, "abandoned")


def test_rooms_are_neither_added_nor_hard_deleted_in_the_admin(lobby: Any, root: User) -> None:
    admin = staff_client(root)

    assert admin.get("/admin/rooms/room/add/").status_code == 403
    assert admin.get(f"/admin/rooms/room/{lobby.pk}/delete/").status_code == 403
    act(admin, "rooms/room", "delete_selected", [lobby.pk], post="yes")
    assert Room.objects.filter(pk=lobby.pk, deleted_at__isnull=True).exists()


def test_direct_conversations_are_only_looked_at_in_the_admin(alice: Any, bob: Any, root: User) -> None:
    dm, _ = rooms.direct_open(creator=alice, user_ids=[bob.pk])
    membership = Membership.objects.get(room=dm, user=bob)
    admin = staff_client(root)

    assert admin.post(f"/admin/rooms/room/{dm.pk}/change/", {"name": "x", "reason": "y"}).status_code == 403
    assert admin.post(f"/admin/rooms/membership/{membership.pk}/change/", {"role": "owner"}).status_code == 403


# --- Messages, reactions and the event record ---------------------------------------------------------------


@asynctest
async def test_removing_a_reaction_in_the_admin_is_pushed_and_logged(
    fresh_realtime: None,  # noqa: F811
    lobby: Any,
    alice: Any,
    bob: Any,
    root: User,
) -> None:
    message = await call(message_post, room=lobby, author=alice, body="vote")
    await call(reaction_add, user=bob, message=message[0], emoji="👎")
    reaction = await call(Reaction.objects.get, user=bob)
    socket = await connect(alice)

    await run_admin(root, lambda admin: act(admin, "messaging/reaction", "remove_reactions", [reaction.pk], "rude"))

    frames = await frames_until(socket, "message.updated")
    assert frames[-1]["message"]["reactions"] == []
    entry = await call(log, ModerationAction.Kind.REACTION_REMOVE)
    assert (entry.target_user_id, entry.message_id, entry.detail, entry.reason) == (bob.pk, message[0].pk, "👎", "rude")


def test_messages_reactions_and_events_are_not_written_in_the_admin(
    lobby: Any, alice: Any, bob: Any, root: User
) -> None:
    message, _ = message_post(room=lobby, author=alice, body="hello")
    reaction_add(user=bob, message=message, emoji="👍")
    reaction = Reaction.objects.get()
    event = Event.objects.filter(room=lobby).last()
    assert event is not None
    admin = staff_client(root)

    for model, pk in (
        ("messaging/message", message.pk),
        ("messaging/reaction", reaction.pk),
        ("rooms/event", event.pk),
    ):
        assert admin.get(f"/admin/{model}/add/").status_code == 403, model
        assert admin.post(f"/admin/{model}/{pk}/change/", {"body": "rewritten"}).status_code == 403, model
        assert admin.post(f"/admin/{model}/{pk}/delete/", {"post": "yes"}).status_code == 403, model
    message.refresh_from_db()
    assert message.body == "hello"
    assert Reaction.objects.filter(pk=reaction.pk).exists() and Event.objects.filter(pk=event.pk).exists()


# --- Accounts: deactivated, or erased, never deleted ---------------------------------------------------------


@asynctest
async def test_an_account_is_deactivated_not_deleted_and_its_sockets_close(
    fresh_realtime: None,  # noqa: F811
    lobby: Any,
    bob: Any,
    root: User,
) -> None:
    socket = await connect(bob)

    deleted = await run_admin(root, lambda admin: admin.post(f"/admin/accounts/user/{bob.pk}/delete/", {"post": "yes"}))
    await run_admin(root, lambda admin: act(admin, "accounts/user", "deactivate_accounts", [bob.pk], "spam"))

    assert deleted.status_code == 403
    assert await socket.close_code() == 4003
    assert await call(User.objects.filter(pk=bob.pk, is_active=False).exists)


@asynctest
async def test_erasing_an_account_closes_its_sockets_clears_its_data_and_keeps_its_messages_as_a_deleted_users(
    fresh_realtime: None,  # noqa: F811
    lobby: Any,
    alice: Any,
    bob: Any,
    carol: Any,
    root: User,
    client_for: Any,
) -> None:
    dm, _ = await call(rooms.direct_open, creator=alice, user_ids=[bob.pk])
    await call(message_post, room=lobby, author=bob, body="my words stay")
    await call(message_post, room=dm, author=bob, body="between us")
    bobs_socket = await connect(bob)

    def erase(admin: Client) -> tuple[Any, Any]:
        asked = act(admin, "accounts/user", "erase_accounts", [bob.pk], "GDPR request 42")
        done = act(admin, "accounts/user", "erase_accounts", [bob.pk], "GDPR request 42", confirmed="yes")
        return asked, done

    asked, _ = await run_admin(root, erase)

    assert b"cannot be undone" in asked.content
    assert await bobs_socket.close_code() == 4003
    erased = await call(User.objects.get, pk=bob.pk)
    assert (erased.username, erased.display_name, erased.email, erased.is_active) == (
        f"deleted-{bob.pk}",
        "",
        "",
        False,
    )
    assert not erased.has_usable_password()
    tokens = await call(lambda: list(OutstandingToken.objects.filter(user_id=bob.pk).values_list("pk", flat=True)))
    assert tokens and await call(BlacklistedToken.objects.filter(token_id__in=tokens).count) == len(tokens)
    history = await call(lambda: client_for(alice).get(f"/api/v1/rooms/{lobby.pk}/messages/").json())
    mine = [message for message in history["results"] if message["body"] == "my words stay"]
    assert mine[0]["author"] == {"id": bob.pk, "username": f"deleted-{bob.pk}", "display_name": "Deleted user"}
    # Nothing the event record replays still carries the old name.
    payloads = await call(lambda: [event.payload for event in Event.objects.all()])
    assert '"bob"' not in str(payloads).replace("'", '"')
    assert await call(lambda: ModerationAction.objects.filter(target_username="bob").exists()) is False
    entry = await call(log, ModerationAction.Kind.USER_ERASE)
    assert (entry.actor_id, entry.target_user_id, entry.reason) == (root.pk, bob.pk, "GDPR request 42")


def test_erasing_the_last_owner_hands_the_channel_on(lobby: Any, alice: Any, carol: Any, root: User) -> None:
    act(staff_client(root), "accounts/user", "erase_accounts", [alice.pk], "closing account", confirmed="yes")

    assert Membership.objects.get(room=lobby, user=carol).role == "owner"
    assert User.objects.get(pk=alice.pk).erased_at is not None
