"""`GET presence/?users=`: who of the people one shares a room with is online now."""

from __future__ import annotations

import pytest

API = "/api/v1"


# --- presence/ ----------------------------------------------------------------------------------


@pytest.fixture
def online():  # type: ignore[no-untyped-def]
    """Open a pretend socket for each user given; close them all afterwards."""
    from asgiref.sync import async_to_sync

    from realtime import presence

    opened: list[tuple[int, str]] = []

    def open_socket(user) -> None:  # type: ignore[no-untyped-def]
        socket_id = f"test-{user.pk}-{len(opened)}"
        async_to_sync(presence.socket_opened)(user.pk, socket_id)
        opened.append((user.pk, socket_id))

    yield open_socket
    for user_id, socket_id in opened:
        async_to_sync(presence.socket_closed)(user_id, socket_id)


def test_presence_reports_online_roommates(client_for, lobby, alice, bob, carol, online):
    online(bob)

    response = client_for(alice).get(f"{API}/presence/?users={bob.pk},{carol.pk}")

    assert response.status_code == 200
    assert response.json() == {"online": [bob.pk]}


def test_presence_hides_people_who_share_no_room(client_for, lobby, alice, mallory, online):
    online(mallory)
    online(alice)

    assert client_for(alice).get(f"{API}/presence/?users={mallory.pk}").json() == {"online": []}
    assert client_for(mallory).get(f"{API}/presence/?users={alice.pk}").json() == {"online": []}


def test_presence_hides_people_who_share_only_a_direct_conversation_never_written_in(
    client_for, alice, mallory, online
):
    from messaging.services import message_post
    from rooms.services import direct_open

    online(mallory)
    online(alice)
    room, _ = direct_open(creator=alice, user_ids=[mallory.pk])

    # Opening a conversation with someone must not tell whether they are around.
    assert client_for(alice).get(f"{API}/presence/?users={mallory.pk}").json() == {"online": []}
    assert client_for(mallory).get(f"{API}/presence/?users={alice.pk}").json() == {"online": []}

    message_post(room=room, author=alice, body="hi")

    assert client_for(alice).get(f"{API}/presence/?users={mallory.pk}").json() == {"online": [mallory.pk]}
    assert client_for(mallory).get(f"{API}/presence/?users={alice.pk}").json() == {"online": [alice.pk]}


def test_presence_needs_credentials(anon, alice):
    assert anon.get(f"{API}/presence/?users={alice.pk}").status_code == 401


@pytest.mark.parametrize(
    "users",
    [
        "x",
        "1,-2",
        "0",
        ",".join(str(n) for n in range(1, 202)),
        # str.isdigit() says yes to these, and int() then raised (or read them as digits).
        "²",
        "1,³",
        "١٢",
        "1_000",
        "9" * 5000,
    ],
)
def test_presence_refuses_a_bad_user_list(client_for, alice, users):
    response = client_for(alice).get(f"{API}/presence/?users={users}")

    assert response.status_code == 400
    assert "users" in response.json()
