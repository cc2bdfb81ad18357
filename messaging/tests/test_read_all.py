"""Marking everything read (POST rooms/read/): every room's marker moves to its newest message, forward only,
each move a private `read` event for the caller's other devices."""

from __future__ import annotations

import pytest

from messaging.services import message_delete, message_post, read_mark, read_mark_all
from rooms import services as room_services
from rooms.events import Event
from rooms.models import Membership

pytestmark = pytest.mark.django_db

API = "/api/v1"


def post(room, author, body: str = "hello"):  # type: ignore[no-untyped-def]
    message, _ = message_post(room=room.pk, author=author, body=body)
    return message


def unread(client, room_id: int) -> int:  # type: ignore[no-untyped-def]
    [room] = [room for room in client.get(f"{API}/rooms/").json() if room["id"] == room_id]
    return room["unread_count"]


def test_mark_all_read_clears_every_room_and_reports_what_moved(client_for, alice, bob, lobby):
    other = room_services.room_create(creator=alice, name="Other")
    room_services.room_join(user=bob, room=other)
    quiet = room_services.room_create(creator=alice, name="Quiet")
    room_services.room_join(user=bob, room=quiet)
    post(lobby, alice)
    newest_lobby = post(lobby, alice, "second")
    newest_other = post(other, alice)
    client = client_for(bob)

    response = client.post(f"{API}/rooms/read/")

    assert response.status_code == 200
    assert response.json() == {
        "rooms": [
            {"room": lobby.pk, "message_id": newest_lobby.pk},
            {"room": other.pk, "message_id": newest_other.pk},
        ]
    }
    assert (unread(client, lobby.pk), unread(client, other.pk), unread(client, quiet.pk)) == (0, 0, 0)


def test_mark_all_read_records_a_private_read_event_per_room_moved(alice, bob, lobby):
    newest = post(lobby, alice)

    read_mark_all(user=bob)

    [event] = Event.objects.filter(type=Event.Type.READ, user_id=bob.pk)
    assert (event.room_id, event.private, event.payload) == (
        lobby.pk,
        True,
        {"room": lobby.pk, "message_id": newest.pk},
    )


def test_mark_all_read_with_nothing_unread_changes_nothing(alice, bob, lobby):
    newest = post(lobby, alice)
    read_mark(user=bob, room=lobby, message_id=newest.pk)

    assert read_mark_all(user=bob) == {}
    assert Event.objects.filter(type=Event.Type.READ, user_id=bob.pk).count() == 1


def test_mark_all_read_counts_deleted_newest_messages_and_leaves_deleted_rooms(alice, bob, lobby):
    post(lobby, alice)
    last = post(lobby, alice, "gone")
    message_delete(actor=alice, message=last)
    gone = room_services.room_create(creator=alice, name="Gone")
    room_services.room_join(user=bob, room=gone)
    post(gone, alice)
    room_services.room_delete(actor=alice, room=gone)

    assert read_mark_all(user=bob) == {lobby.pk: last.pk}
    assert (
        Membership.objects.get(room=gone, user=bob).last_read_message_id
        < Membership.objects.get(room=lobby, user=bob).last_read_message_id
    )


@pytest.mark.parametrize("rooms", [1, 3])
def test_mark_all_read_takes_two_queries_per_room_moved(client_for, alice, bob, rooms, django_assert_num_queries):
    for n in range(rooms):
        room = room_services.room_create(creator=alice, name=f"Room {n}")
        room_services.room_join(user=bob, room=room)
        post(room, alice)
    client = client_for(bob)

    # Signing in and the one query for the rooms behind; then per room the forward-only update and the event.
    with django_assert_num_queries(4 + 2 * rooms):
        assert client.post(f"{API}/rooms/read/").status_code == 200


def test_mark_all_read_needs_a_sign_in(anon):
    assert anon.post(f"{API}/rooms/read/").status_code == 401


def test_mark_all_read_takes_no_body_fields_but_ignores_none(client_for, bob, lobby):
    assert client_for(bob).post(f"{API}/rooms/read/", {}, format="json").status_code == 200
