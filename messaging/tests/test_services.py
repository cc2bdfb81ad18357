"""Message services: what each writes, and the one event each records and publishes after commit."""

from __future__ import annotations

import json

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from core.errors import Forbidden, Invalid, NotFound
from messaging import services
from messaging.models import Message, Reaction, Report
from messaging.payloads import message_payload
from messaging.selectors import message_reload
from rooms import services as room_services
from rooms.events import Event

pytestmark = pytest.mark.django_db


TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE", "ROLLBACK")


def message_events() -> list[Event]:
    return list(Event.objects.filter(type__startswith="message.").order_by("id"))


# --- Posting ---------------------------------------------------------------------------


def test_message_post_records_one_message_new_event_with_the_whole_message(capture_events, alice, lobby):
    with capture_events() as events:
        message, created = services.message_post(room=lobby, author=alice, body="hello", client_id="c-1")

    assert created is True
    [event] = events
    assert event.type == "message.new"
    assert (event.room_id, event.actor_id, event.message_id) == (lobby.pk, alice.pk, message.pk)
    assert event.payload == {"room": lobby.pk, "message": json.loads(json.dumps(message_payload(message)))}
    assert event.payload["message"] == json.loads(json.dumps(message_payload(message_reload(message.pk))))
    assert message_events() == [event]


def test_message_post_broadcasts_after_commit(capture_events, alice, lobby):
    with capture_events() as events:
        services.message_post(room=lobby, author=alice, body="not yet")
        assert events == []

    assert [event.type for event in events] == ["message.new"]


def test_message_post_does_not_broadcast_when_rolled_back(capture_events, alice, lobby):
    events_before = Event.objects.count()

    with capture_events() as events, pytest.raises(RuntimeError), transaction.atomic():
        services.message_post(room=lobby, author=alice, body="never happened")
        raise RuntimeError("the caller's transaction fails")

    assert events == []
    assert not Message.objects.exists()
    assert Event.objects.count() == events_before


def test_message_post_repeated_with_the_same_client_id_records_no_event(capture_events, alice, lobby):
    first, _ = services.message_post(room=lobby, author=alice, body="hi", client_id="once")

    with capture_events() as events:
        again, created = services.message_post(room=lobby, author=alice, body="hi", client_id="once")

    assert created is False
    assert again.pk == first.pk
    assert events == []
    assert Message.objects.count() == 1


def test_a_post_by_a_member_runs_only_the_inserts_of_its_message_and_event(alice, lobby):
    services.message_post(room=lobby, author=alice, body="the first post fills the membership cache")

    with CaptureQueriesContext(connection) as queries:
        services.message_post(room=lobby, author=alice, body="hello again", client_id="c-2")

    statements = [query["sql"] for query in queries.captured_queries]
    work = [sql for sql in statements if not sql.upper().startswith(TRANSACTION_CONTROL)]
    # The message, then its event (on PostgreSQL the event-order lock rides in the same statement).
    assert len(work) == 2, statements
    assert "messaging_message" in work[0] and work[0].upper().startswith("INSERT")
    assert "rooms_event" in work[1] and "INSERT" in work[1].upper()


def test_a_member_who_left_cannot_post_though_their_membership_was_cached(
    django_capture_on_commit_callbacks, bob, lobby
):
    services.message_post(room=lobby, author=bob, body="still here")
    with django_capture_on_commit_callbacks(execute=True):
        room_services.room_leave(user=bob, room=lobby)

    with pytest.raises(Forbidden):
        services.message_post(room=lobby, author=bob, body="gone")
    assert list(Message.objects.values_list("body", flat=True)) == ["still here"]


def test_a_kicked_member_cannot_post_though_their_membership_was_cached(
    django_capture_on_commit_callbacks, alice, bob, lobby
):
    services.message_post(room=lobby, author=bob, body="still here")
    with django_capture_on_commit_callbacks(execute=True):
        room_services.member_kick(actor=alice, room=lobby, user_id=bob.pk)

    with pytest.raises(Forbidden):
        services.message_post(room=lobby, author=bob, body="gone")


def test_nobody_posts_to_a_deleted_room_though_their_membership_was_cached(
    django_capture_on_commit_callbacks, alice, bob, lobby
):
    services.message_post(room=lobby, author=bob, body="before")
    with django_capture_on_commit_callbacks(execute=True):
        room_services.room_delete(actor=alice, room=lobby)

    with pytest.raises(NotFound):
        services.message_post(room=lobby, author=bob, body="after")


def test_message_post_by_a_non_member_writes_and_records_nothing(capture_events, mallory, lobby, secret):
    with capture_events() as events:
        with pytest.raises(Forbidden):
            services.message_post(room=lobby, author=mallory, body="let me in")
        with pytest.raises(NotFound):
            services.message_post(room=secret, author=mallory, body="let me in")

    assert events == []
    assert not Message.objects.exists()


def test_message_post_fills_mentions_with_existing_users_only(alice, bob, carol, lobby):
    message, _ = services.message_post(room=lobby, author=alice, body="@bob and @Carol, meet @nobody")

    assert set(message.mentions.all()) == {bob, carol}


def test_message_post_does_not_count_names_inside_code_as_mentions(alice, bob, carol, lobby):
    message, _ = services.message_post(room=lobby, author=alice, body="run `notify @bob`, then ask @carol")

    assert list(message.mentions.all()) == [carol]


def test_message_post_mentions_only_members_of_the_room(alice, bob, mallory, lobby):
    message, _ = services.message_post(room=lobby, author=alice, body="@bob, have you met @mallory?")

    assert message_payload(message)["mentions"] == [bob.pk]
    assert f'data-user-id="{bob.pk}"' in message.html
    # An outsider's name stays text: no id of theirs reaches the room.
    assert f'data-user-id="{mallory.pk}"' not in message.html
    assert "@mallory?" in message.html
    assert list(message.mentions.all()) == [bob]


def test_message_post_in_a_direct_room_mentions_only_its_members(alice, bob, carol):
    room, _ = room_services.direct_open(creator=alice, user_ids=[bob.pk])

    message, _ = services.message_post(room=room, author=alice, body="@bob should we ask @carol?")

    assert message_payload(message)["mentions"] == [bob.pk]
    assert f'data-user-id="{carol.pk}"' not in message.html


# --- Editing -------------------------------------------------------------------------------


def test_message_edit_records_message_updated_with_the_new_text(capture_events, bob, lobby, say):
    message = say(lobby, bob, "draft")

    with capture_events() as events:
        edited = services.message_edit(actor=bob, message=message, body="final")

    [event] = events
    assert event.type == "message.updated"
    assert event.message_id == message.pk
    assert event.payload["message"]["body"] == "final"
    assert event.payload["message"]["edited_at"] is not None
    assert edited.body == "final"
    assert list(edited.edits.values_list("body", flat=True)) == ["draft"]


def test_message_edit_to_the_same_text_records_nothing(capture_events, bob, lobby, say):
    message = say(lobby, bob, "unchanged")

    with capture_events() as events:
        services.message_edit(actor=bob, message=message, body="  unchanged ")

    assert events == []
    assert not message.edits.exists()


def test_message_edit_by_someone_else_is_forbidden_and_records_nothing(capture_events, alice, bob, lobby, say):
    message = say(lobby, bob, "mine")

    with capture_events() as events, pytest.raises(Forbidden):
        services.message_edit(actor=alice, message=message, body="hers")

    assert events == []
    assert message_reload(message.pk).body == "mine"


def test_message_edit_replaces_the_mentions(alice, bob, carol, lobby, say):
    message = say(lobby, alice, "cc @bob")

    edited = services.message_edit(actor=alice, message=message, body="cc @carol")

    assert list(edited.mentions.all()) == [carol]


def test_message_edit_mentions_only_members_of_the_room(alice, bob, mallory, lobby, say):
    message = say(lobby, alice, "cc @bob")

    edited = services.message_edit(actor=alice, message=message, body="cc @mallory")

    assert message_payload(edited)["mentions"] == []
    assert "data-user-id" not in edited.html


# --- Deleting ------------------------------------------------------------------------------


def test_message_delete_records_message_updated_with_the_tombstone(capture_events, bob, carol, lobby, say):
    message = say(lobby, bob, "oops")

    with capture_events() as events:
        services.message_delete(actor=carol, message=message)

    [event] = events
    assert event.type == "message.updated"
    assert event.actor_id == carol.pk
    assert event.payload["message"]["deleted"] is True
    assert (event.payload["message"]["body"], event.payload["message"]["html"]) == ("", "")


def test_message_delete_redacts_the_earlier_events_of_the_message(alice, bob, lobby, say):
    message = say(lobby, bob, "my card number is 4111 1111", client_id="c-7")
    services.message_edit(actor=bob, message=message, body="my pin is 1234, mention @alice")
    services.reaction_add(user=alice, message=message, emoji="😱")
    other = say(lobby, alice, "this one stays")

    services.message_delete(actor=bob, message=message)

    recorded = [event for event in message_events() if event.message_id == message.pk]
    assert [event.type for event in recorded] == ["message.new", *["message.updated"] * 3]
    for event in recorded:
        text = json.dumps(event.payload, ensure_ascii=False)
        assert "4111" not in text
        assert "1234" not in text
        assert "😱" not in text
        assert event.payload["message"]["deleted"] is True
    [kept] = [event for event in message_events() if event.message_id == other.pk]
    assert kept.payload["message"]["body"] == "this one stays"


def test_message_delete_removes_text_edits_reactions_and_mentions(alice, bob, lobby, say):
    message = say(lobby, bob, "hi @alice")
    services.message_edit(actor=bob, message=message, body="hey @alice")
    services.reaction_add(user=alice, message=message, emoji="👋")

    services.message_delete(actor=bob, message=message)

    gone = Message.objects.get(pk=message.pk)
    assert gone.deleted
    assert (gone.body, gone.html) == ("", "")
    assert not gone.edits.exists()
    assert not gone.reactions.exists()
    assert not gone.mentions.exists()


def test_message_delete_of_a_deleted_message_records_nothing(capture_events, bob, lobby, say):
    message = say(lobby, bob, "gone")
    services.message_delete(actor=bob, message=message)

    with capture_events() as events:
        services.message_delete(actor=bob, message=message)

    assert events == []


def test_message_delete_by_a_plain_member_is_forbidden(capture_events, alice, bob, lobby, say):
    message = say(lobby, alice, "the owner's words")

    with capture_events() as events, pytest.raises(Forbidden):
        services.message_delete(actor=bob, message=message)

    assert events == []
    assert not message_reload(message.pk).deleted


def test_message_delete_by_staff_outside_the_room_is_allowed(capture_events, alice, staff, secret, say):
    message = say(secret, alice, "hush")

    with capture_events() as events:
        services.message_delete(actor=staff, message=message)

    assert [event.type for event in events] == ["message.updated"]
    assert message_reload(message.pk).deleted


# --- Reactions -------------------------------------------------------------------------------


def test_reaction_add_records_message_updated_with_the_reactions(capture_events, alice, bob, lobby, say):
    message = say(lobby, alice, "cake!")

    with capture_events() as events:
        _, created = services.reaction_add(user=bob, message=message, emoji="🍰")

    assert created is True
    [event] = events
    assert event.type == "message.updated"
    assert event.actor_id == bob.pk
    assert event.payload["message"]["reactions"] == [{"emoji": "🍰", "count": 1, "users": [bob.pk]}]


def test_reaction_add_repeated_records_no_event(capture_events, alice, bob, lobby, say):
    message = say(lobby, alice, "cake!")
    services.reaction_add(user=bob, message=message, emoji="🍰")

    with capture_events() as events:
        _, created = services.reaction_add(user=bob, message=message, emoji=" 🍰 ")

    assert created is False
    assert events == []
    assert Reaction.objects.count() == 1


def test_reaction_remove_records_message_updated_without_the_reaction(capture_events, alice, bob, lobby, say):
    message = say(lobby, alice, "cake!")
    services.reaction_add(user=bob, message=message, emoji="🍰")

    with capture_events() as events:
        services.reaction_remove(user=bob, message=message, emoji="🍰")

    [event] = events
    assert event.type == "message.updated"
    assert event.payload["message"]["reactions"] == []
    assert not Reaction.objects.exists()


def test_reaction_remove_of_a_reaction_never_made_raises_not_found_and_records_nothing(
    capture_events, alice, bob, lobby, say
):
    message = say(lobby, alice, "cake!")
    services.reaction_add(user=alice, message=message, emoji="🍰")

    with capture_events() as events, pytest.raises(NotFound):
        services.reaction_remove(user=bob, message=message, emoji="🍰")

    assert events == []
    assert Reaction.objects.count() == 1


@pytest.mark.parametrize("emoji", ["", "x", "<b>", ":a b:", "🍰" * 33, 5, None])
def test_reaction_add_refuses_what_is_not_an_emoji(alice, bob, lobby, say, emoji):
    message = say(lobby, alice, "cake!")

    with pytest.raises(Invalid):
        services.reaction_add(user=bob, message=message, emoji=emoji)

    assert not Reaction.objects.exists()


# --- Reports ---------------------------------------------------------------------------------


def test_report_create_goes_to_the_moderators_without_telling_the_room(capture_events, alice, bob, lobby, say):
    message = say(lobby, alice, "rude words")

    with capture_events() as events:
        report, created = services.report_create(reporter=bob, message=message, reason="  rude  ")

    assert created is True
    assert (report.reason, report.status) == ("rude", Report.Status.OPEN)
    assert events == []


def test_report_create_returns_the_open_report_on_a_repeat(alice, bob, lobby, say):
    message = say(lobby, alice, "rude words")
    first, _ = services.report_create(reporter=bob, message=message, reason="rude")

    again, created = services.report_create(reporter=bob, message=message, reason="very rude")

    assert created is False
    assert again.pk == first.pk
    assert Report.objects.count() == 1


def test_report_close_closes_every_open_report_of_the_message_as_one_case(alice, bob, carol, staff, lobby, say):
    message = say(lobby, alice, "rude words")
    other = say(lobby, alice, "more rude words")
    first, _ = services.report_create(reporter=bob, message=message, reason="rude")
    services.report_create(reporter=carol, message=message, reason="very rude")
    elsewhere, _ = services.report_create(reporter=bob, message=other, reason="rude too")

    services.report_close(actor=staff, report=first, status=Report.Status.DISMISSED, reason="banter")

    assert set(Report.objects.filter(message=message).values_list("status", "handled_by")) == {
        (Report.Status.DISMISSED, staff.pk)
    }
    elsewhere.refresh_from_db()
    assert elsewhere.status == Report.Status.OPEN
