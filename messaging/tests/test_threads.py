"""Threads as docs/api.md describes them: replies under their root, summaries, following and read positions."""

from __future__ import annotations

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import Invalid
from messaging import services, threads
from messaging.models import Message, ThreadState
from rooms.events import Event
from rooms.selectors import room_list_for_member

pytestmark = pytest.mark.django_db


def thread_url(message_id: int) -> str:
    return f"/api/v1/messages/{message_id}/thread/"


def post(client, room_id: int, body: str, **extra: object):  # type: ignore[no-untyped-def]
    return client.post(f"/api/v1/rooms/{room_id}/messages/", {"body": body, **extra}, format="json")


# --- Replies and the root's summary ----------------------------------------------------------


def test_a_reply_is_filed_under_its_root_and_the_root_counts_it(client_for, alice, bob, lobby, say):
    root = say(lobby, alice, "lunch?")

    response = post(client_for(bob), lobby.pk, "yes", parent=root.pk)

    assert response.status_code == 201
    assert response.json()["parent"] == root.pk
    summary = client_for(alice).get(f"/api/v1/messages/{root.pk}/").json()
    assert summary["reply_count"] == 1
    assert summary["last_reply_at"] == response.json()["created_at"]
    assert summary["last_repliers"] == [bob.pk]


def test_a_reply_to_a_reply_is_filed_under_the_root(alice, bob, carol, lobby, say):
    root = say(lobby, alice, "question")
    first = say(lobby, bob, "answer", parent=root.pk)

    second = say(lobby, carol, "answer to the answer", parent=first.pk)

    assert second.parent_id == root.pk
    root.refresh_from_db()
    assert root.reply_count == 2
    assert root.last_replier_ids == [carol.pk, bob.pk]


def test_replies_stay_out_of_the_room_history_unless_broadcast(client_for, alice, bob, lobby, say):
    root = say(lobby, alice, "root")
    say(lobby, bob, "quiet reply", parent=root.pk)
    loud = say(lobby, bob, "loud reply", parent=root.pk, broadcast=True)

    history = client_for(alice).get(f"/api/v1/rooms/{lobby.pk}/messages/").json()["results"]

    assert [message["id"] for message in history] == [root.pk, loud.pk]
    assert history[1]["broadcast"] is True


def test_the_thread_lists_its_root_and_replies_ascending(client_for, alice, bob, carol, lobby, say):
    root = say(lobby, alice, "root")
    replies = [say(lobby, bob, f"reply {n}", parent=root.pk) for n in range(3)]

    page = client_for(alice).get(thread_url(replies[1].pk), {"limit": 2}).json()

    assert page["root"]["id"] == root.pk
    assert [reply["id"] for reply in page["results"]] == [replies[0].pk, replies[1].pk]
    assert page["has_more"] is True
    assert (page["following"], page["last_read_id"]) == (True, 0)
    assert client_for(carol).get(thread_url(root.pk)).json()["following"] is False
    rest = client_for(alice).get(thread_url(root.pk), {"after": replies[1].pk}).json()
    assert [reply["id"] for reply in rest["results"]] == [replies[2].pk]
    assert rest["has_more"] is False


def test_deleting_a_reply_rewinds_the_thread_to_its_previous_reply(alice, bob, carol, lobby, say):
    root = say(lobby, alice, "root")
    first = say(lobby, bob, "first", parent=root.pk)
    last = say(lobby, carol, "last", parent=root.pk)

    services.message_delete(actor=carol, message=last)

    root.refresh_from_db()
    assert root.reply_count == 1
    assert root.last_reply_id == first.pk
    assert root.last_reply_at == first.created_at
    assert root.last_replier_ids == [bob.pk]


def test_deleting_the_only_reply_leaves_no_last_reply(alice, bob, lobby, say):
    root = say(lobby, alice, "root")
    services.message_delete(actor=bob, message=say(lobby, bob, "oops", parent=root.pk))

    root.refresh_from_db()
    assert (root.reply_count, root.last_reply_id, root.last_reply_at, root.last_replier_ids) == (0, None, None, [])


def test_a_reply_event_carries_the_roots_new_summary(capture_events, alice, bob, lobby, say):
    root = say(lobby, alice, "root")

    with capture_events() as published:
        reply = say(lobby, bob, "reply", parent=root.pk)

    event = Event.objects.get(type=Event.Type.MESSAGE_NEW, message_id=reply.pk)
    assert event.payload["thread"]["root"] == root.pk
    assert event.payload["thread"]["reply_count"] == 1
    assert [e.pk for e in published] == [event.pk]  # type: ignore[attr-defined]


def test_replying_to_a_message_of_another_room_is_refused_with_a_reason(client_for, alice, lobby, secret, say):
    elsewhere = say(secret, alice, "elsewhere")

    response = post(client_for(alice), lobby.pk, "reply", parent=elsewhere.pk)

    assert response.status_code == 400
    assert "room" in str(response.json()["parent"])
    assert Message.objects.filter(room=lobby).count() == 0


def test_replying_to_a_deleted_root_is_refused_with_a_reason(client_for, alice, bob, lobby, say):
    root = say(lobby, alice, "root")
    services.message_delete(actor=alice, message=root)

    response = post(client_for(bob), lobby.pk, "reply", parent=root.pk)

    assert response.status_code == 400
    assert "deleted" in str(response.json()["parent"])


def test_broadcast_without_a_parent_is_refused(client_for, alice, lobby):
    response = post(client_for(alice), lobby.pk, "hello", broadcast=True)

    assert response.status_code == 400
    assert "broadcast" in response.json()


def test_broadcast_must_be_a_boolean(client_for, alice, lobby, say):
    root = say(lobby, alice, "root")

    response = post(client_for(alice), lobby.pk, "hello", parent=root.pk, broadcast="yes")

    assert response.status_code == 400
    assert "broadcast" in response.json()


# --- Following ------------------------------------------------------------------------------------


def test_the_root_author_the_replier_and_the_mentioned_follow_a_thread(client_for, alice, bob, carol, lobby, say):
    root = say(lobby, alice, "root")

    say(lobby, bob, "hey @carol", parent=root.pk)

    following = set(ThreadState.objects.filter(root=root, following=True).values_list("user_id", flat=True))
    assert following == {alice.pk, bob.pk, carol.pk}


def test_unfollowing_keeps_the_root_author_out_until_they_take_part_again(client_for, alice, bob, lobby, say):
    root = say(lobby, alice, "root")
    say(lobby, bob, "one", parent=root.pk)
    assert client_for(alice).delete(f"/api/v1/messages/{root.pk}/follow/").status_code == 204

    say(lobby, bob, "two", parent=root.pk)
    assert client_for(alice).get("/api/v1/threads/").json()["results"] == []

    say(lobby, alice, "three", parent=root.pk)
    assert [t["root"]["id"] for t in client_for(alice).get("/api/v1/threads/").json()["results"]] == [root.pk]


def test_following_a_thread_of_a_room_you_cannot_see_is_not_found(client_for, alice, bob, secret, say):
    root = say(secret, alice, "private")

    for method in ("put", "delete"):
        response = getattr(client_for(bob), method)(f"/api/v1/messages/{root.pk}/follow/")
        assert response.status_code == 404
    assert client_for(bob).get(thread_url(root.pk)).status_code == 404
    assert (
        client_for(bob).post(f"{thread_url(root.pk)}read/", {"message_id": root.pk}, format="json").status_code == 404
    )
    assert not ThreadState.objects.filter(user=bob).exists()


def test_following_a_thread_of_a_public_room_you_are_not_in_is_forbidden(client_for, alice, mallory, lobby, say):
    root = say(lobby, alice, "root")

    assert client_for(mallory).put(f"/api/v1/messages/{root.pk}/follow/").status_code == 403


def test_followed_threads_list_latest_reply_first_with_unread_counts(client_for, alice, bob, carol, lobby, say):
    older = say(lobby, alice, "older")
    newer = say(lobby, alice, "newer")
    say(lobby, bob, "on newer", parent=newer.pk)
    say(lobby, bob, "on older 1", parent=older.pk)
    say(lobby, carol, "on older 2", parent=older.pk)

    page = client_for(alice).get("/api/v1/threads/").json()

    assert [(t["root"]["id"], t["unread_count"], t["last_read_id"]) for t in page["results"]] == [
        (older.pk, 2, 0),
        (newer.pk, 1, 0),
    ]
    first = client_for(alice).get("/api/v1/threads/", {"limit": 1}).json()
    assert first["has_more"] is True
    cursor = Message.objects.get(pk=older.pk).last_reply_id
    rest = client_for(alice).get("/api/v1/threads/", {"limit": 1, "before": cursor}).json()
    assert [t["root"]["id"] for t in rest["results"]] == [newer.pk]
    assert client_for(alice).get("/api/v1/threads/", {"room": lobby.pk + 1}).json()["results"] == []


def test_threads_listing_query_count_does_not_grow_with_threads(
    client_for, alice, bob, lobby, say, django_assert_max_num_queries
):
    for n in range(6):
        say(lobby, bob, "reply", parent=say(lobby, alice, f"root {n}").pk)
    client = client_for(alice)

    with django_assert_max_num_queries(8):
        assert len(client.get("/api/v1/threads/").json()["results"]) == 6


# --- Read positions -------------------------------------------------------------------------------


def test_a_thread_read_position_only_moves_forward_and_tells_the_readers_devices(
    client_for, capture_events, alice, bob, lobby, say
):
    root = say(lobby, alice, "root")
    first = say(lobby, bob, "first", parent=root.pk)
    second = say(lobby, bob, "second", parent=root.pk)
    client = client_for(alice)
    read_url = f"{thread_url(root.pk)}read/"

    with capture_events() as published:
        assert client.post(read_url, {"message_id": second.pk}, format="json").status_code == 204
        assert client.post(read_url, {"message_id": first.pk}, format="json").status_code == 204

    assert ThreadState.objects.get(user=alice, root=root).last_read_id == second.pk
    assert [(e.type, e.user_id, e.private, e.payload) for e in published] == [  # type: ignore[attr-defined]
        ("thread.read", alice.pk, True, {"room": lobby.pk, "root": root.pk, "message_id": second.pk})
    ]
    assert client.get("/api/v1/threads/").json()["results"][0]["unread_count"] == 0


def test_a_thread_read_position_must_be_in_that_thread(client_for, alice, bob, lobby, say):
    root = say(lobby, alice, "root")
    other = say(lobby, bob, "not in the thread")

    response = client_for(alice).post(f"{thread_url(root.pk)}read/", {"message_id": other.pk}, format="json")

    assert response.status_code == 400
    assert "message_id" in response.json()


def test_room_unread_counts_leave_thread_replies_out(alice, bob, lobby, say):
    root = say(lobby, alice, "root")
    say(lobby, alice, "quiet", parent=root.pk)
    say(lobby, alice, "loud", parent=root.pk, broadcast=True)

    (room,) = room_list_for_member(user=bob)

    assert room.unread_count == 2  # type: ignore[attr-defined]


# --- A property: stored counts always equal a recount ---------------------------------------------

OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("post"), st.integers(0, 2)),
        st.tuples(st.just("reply"), st.integers(0, 2), st.integers(0, 30), st.booleans()),
        st.tuples(st.just("delete"), st.integers(0, 30)),
        st.tuples(st.just("thread_read"), st.integers(0, 2), st.integers(0, 30)),
        st.tuples(st.just("room_read"), st.integers(0, 2), st.integers(0, 30)),
        st.tuples(st.just("unfollow"), st.integers(0, 2), st.integers(0, 30)),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS)
def test_stored_thread_and_unread_counts_always_equal_a_recount(operations, alice, bob, carol, lobby):
    people = [alice, bob, carol]
    # Each example runs in a savepoint rolled back at its end, so examples do not see each other's messages.
    try:
        with transaction.atomic():
            _run_and_recount(operations, people, lobby)
            raise _RolledBack
    except _RolledBack:
        pass


class _RolledBack(Exception):
    pass


def _run_and_recount(operations, people, lobby) -> None:  # type: ignore[no-untyped-def]
    from rooms.models import Membership

    posted: list[Message] = [services.message_post(room=lobby, author=people[0], body="first")[0]]
    for operation in operations:
        kind, *args = operation
        if kind == "post":
            posted.append(services.message_post(room=lobby, author=people[args[0]], body="top")[0])
        elif kind == "reply":
            target = posted[args[1] % len(posted)]
            root = Message.objects.get(pk=target.parent_id or target.pk)
            try:
                reply, _ = services.message_post(
                    room=lobby, author=people[args[0]], body="re", parent=target.pk, broadcast=args[2]
                )
                posted.append(reply)
            except Invalid:
                assert root.deleted
        elif kind == "delete":
            target = posted[args[0] % len(posted)]
            services.message_delete(actor=people[0], message=target)
        elif kind in ("thread_read", "unfollow"):
            target = posted[args[1] % len(posted)]
            root = Message.objects.get(pk=target.parent_id or target.pk)
            if kind == "thread_read":
                threads.thread_read(user=people[args[0]], root=root, message_id=target.pk)
            else:
                threads.thread_follow(user=people[args[0]], root=root, following=False)
        else:
            target = posted[args[1] % len(posted)]
            services.read_mark(user=people[args[0]], room=lobby, message_id=target.pk)

    every = list(Message.objects.filter(room=lobby).order_by("id"))
    for root in (message for message in every if message.parent_id is None):
        live = [m for m in every if m.parent_id == root.pk and not m.deleted]
        assert root.reply_count == len(live)
        assert root.last_reply_id == (live[-1].pk if live else None)
        assert root.last_reply_at == (live[-1].created_at if live else None)
        faces: list[int] = []
        for reply in reversed(live):
            if reply.author_id not in faces and len(faces) < threads.THREAD_FACES:
                faces.append(reply.author_id)
        assert root.last_replier_ids == faces
    for person in people:
        states, _ = threads.followed_threads(user=person, limit=200)
        for state in states:
            expected = sum(
                1
                for m in every
                if m.parent_id == state.root_id
                and not m.deleted
                and m.pk > state.last_read_id
                and m.author_id != person.pk
            )
            assert state.unread_count == expected  # type: ignore[attr-defined]
        marker = Membership.objects.get(room=lobby, user=person).last_read_message_id
        (room,) = room_list_for_member(user=person)
        expected_room = sum(
            1
            for m in every
            if (m.parent_id is None or m.broadcast) and not m.deleted and m.pk > marker and m.author_id != person.pk
        )
        assert room.unread_count == expected_room  # type: ignore[attr-defined]
