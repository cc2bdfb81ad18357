"""Pins, search filters and history around a message, as docs/api.md describes them."""

from __future__ import annotations

import datetime as dt

import pytest

from messaging import services
from messaging.models import Message
from rooms import services as room_services
from rooms.events import Event

pytestmark = pytest.mark.django_db


def pin_url(message_id: int) -> str:
    return f"/api/v1/messages/{message_id}/pin/"


def found(response) -> list[str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.json()
    return [message["body"] for message in response.json()["results"]]


# --- Pins -----------------------------------------------------------------------------------------


def test_a_channel_admin_pins_and_the_room_hears_it(client_for, capture_events, alice, carol, lobby, say):
    message = say(lobby, alice, "the plan")

    with capture_events() as published:
        assert client_for(carol).post(pin_url(message.pk)).status_code == 204

    (event,) = published
    assert (event.type, event.payload["message"]["pinned"]) == (Event.Type.MESSAGE_UPDATED, True)  # type: ignore[attr-defined]
    pinned = client_for(alice).get(f"/api/v1/rooms/{lobby.pk}/pins/").json()
    assert [m["id"] for m in pinned] == [message.pk]


def test_a_plain_member_may_not_pin_in_a_channel(client_for, alice, bob, lobby, say):
    message = say(lobby, alice, "the plan")

    response = client_for(bob).post(pin_url(message.pk))

    assert response.status_code == 403
    assert Message.objects.get(pk=message.pk).pinned_at is None


def test_anyone_in_a_dm_may_pin_and_unpin(client_for, alice, bob, say):
    dm, _ = room_services.direct_open(creator=alice, user_ids=[bob.pk])
    message = say(dm, alice, "address")

    assert client_for(bob).post(pin_url(message.pk)).status_code == 204
    assert client_for(alice).delete(pin_url(message.pk)).status_code == 204
    assert client_for(bob).get(f"/api/v1/rooms/{dm.pk}/pins/").json() == []


def test_pins_list_newest_pin_first_and_leave_deleted_messages_out(client_for, alice, lobby, say):
    first, second, gone = (say(lobby, alice, body) for body in ("first", "second", "gone"))
    for message in (second, first, gone):
        assert client_for(alice).post(pin_url(message.pk)).status_code == 204
    services.message_delete(actor=alice, message=gone)

    pinned = client_for(alice).get(f"/api/v1/rooms/{lobby.pk}/pins/").json()

    assert [m["id"] for m in pinned] == [first.pk, second.pk]


def test_pins_of_a_room_you_cannot_see_are_not_found(client_for, alice, bob, secret, say):
    message = say(secret, alice, "secret plan")

    assert client_for(bob).post(pin_url(message.pk)).status_code == 404
    assert client_for(bob).get(f"/api/v1/rooms/{secret.pk}/pins/").status_code == 404


# --- Search filters ---------------------------------------------------------------------------------


@pytest.fixture
def spread(alice, bob, lobby, secret, say):  # type: ignore[no-untyped-def]
    """Deploy talk by two people in two rooms, on two days."""
    say(lobby, alice, "deploy from alice in lobby")
    say(lobby, bob, "deploy from bob in lobby")
    say(secret, alice, "deploy from alice in secret")
    old = say(lobby, bob, "deploy long ago")
    Message.objects.filter(pk=old.pk).update(created_at=dt.datetime(2020, 1, 15, 12, tzinfo=dt.UTC))


def test_search_filters_by_channel_and_person_in_the_query(client_for, alice, spread):
    search = client_for(alice).get

    assert found(search("/api/v1/search/messages/", {"q": "deploy in:#secret"})) == ["deploy from alice in secret"]
    # Newest first, by id.
    assert found(search("/api/v1/search/messages/", {"q": "deploy from:@bob"})) == [
        "deploy long ago",
        "deploy from bob in lobby",
    ]
    assert found(search("/api/v1/search/messages/", {"q": "in:#lobby from:@ALICE"})) == ["deploy from alice in lobby"]


def test_search_filters_by_dates_in_the_query_and_as_parameters(client_for, alice, spread):
    search = client_for(alice).get

    assert found(search("/api/v1/search/messages/", {"q": "deploy before:2020-01-16"})) == ["deploy long ago"]
    assert found(search("/api/v1/search/messages/", {"q": "deploy after:2020-01-14", "until": "2020-01-15"})) == [
        "deploy long ago"
    ]
    assert "deploy long ago" not in found(search("/api/v1/search/messages/", {"q": "deploy after:2020-01-15"}))
    assert found(search("/api/v1/search/messages/", {"q": "deploy", "since": "2020-01-16", "room": 999_999})) == []


def test_search_filters_by_author_id_as_a_parameter(client_for, alice, bob, spread):
    bodies = found(client_for(alice).get("/api/v1/search/messages/", {"q": "lobby", "author": bob.pk}))

    assert bodies == ["deploy from bob in lobby"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"q": "deploy in:#nowhere"}, "in"),
        ({"q": "deploy in:#"}, "in"),
        ({"q": "deploy from:@nobody"}, "from"),
        ({"q": "deploy before:yesterday"}, "before"),
        ({"q": "deploy after:2026-13-45"}, "after"),
        ({"q": "deploy has:nothing"}, "has"),
        ({"q": "deploy", "has": "everything"}, "has"),
        ({"q": "deploy", "since": "soon"}, "since"),
        ({"q": "deploy", "until": "2026-02-30"}, "until"),
        ({"q": "deploy", "author": "bob"}, "author"),
    ],
)
def test_search_filters_with_nonsense_values_are_refused_naming_the_filter(client_for, alice, spread, params, field):
    response = client_for(alice).get("/api/v1/search/messages/", params)

    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_a_channel_you_are_not_in_cannot_be_searched_by_name(client_for, bob, spread):
    response = client_for(bob).get("/api/v1/search/messages/", {"q": "deploy in:#secret"})

    assert response.status_code == 400
    assert "in" in response.json()


# --- History around a message -----------------------------------------------------------------------


def test_history_around_a_message_centres_the_page_on_it(client_for, alice, lobby, say):
    ids = [say(lobby, alice, f"m{n}").pk for n in range(11)]

    page = client_for(alice).get(f"/api/v1/rooms/{lobby.pk}/messages/", {"around": ids[5], "limit": 5}).json()

    assert [m["id"] for m in page["results"]] == ids[3:8]
    assert (page["has_more"], page["has_newer"]) == (True, True)


def test_history_around_a_message_near_the_end_fills_the_page_with_older_ones(client_for, alice, lobby, say):
    ids = [say(lobby, alice, f"m{n}").pk for n in range(8)]

    page = client_for(alice).get(f"/api/v1/rooms/{lobby.pk}/messages/", {"around": ids[-1], "limit": 5}).json()

    assert [m["id"] for m in page["results"]] == ids[-5:]
    assert (page["has_more"], page["has_newer"]) == (True, False)


def test_history_around_a_thread_reply_opens_at_its_root(client_for, alice, bob, lobby, say):
    root = say(lobby, alice, "root")
    reply = say(lobby, bob, "reply", parent=root.pk)

    page = client_for(alice).get(f"/api/v1/rooms/{lobby.pk}/messages/", {"around": reply.pk}).json()

    assert [m["id"] for m in page["results"]] == [root.pk]


def test_history_around_a_message_of_another_room_is_not_found(client_for, alice, lobby, secret, say):
    elsewhere = say(secret, alice, "elsewhere")

    response = client_for(alice).get(f"/api/v1/rooms/{lobby.pk}/messages/", {"around": elsewhere.pk})

    assert response.status_code == 404


def test_history_around_refuses_a_cursor_beside_it(client_for, alice, lobby, say):
    message = say(lobby, alice, "m")

    response = client_for(alice).get(f"/api/v1/rooms/{lobby.pk}/messages/", {"around": message.pk, "before": 5})

    assert response.status_code == 400
    assert "around" in response.json()
