"""Where the event record stands: the newest id survives pruning, so resuming from it is never too old."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from messaging.services import message_post, read_mark
from rooms.events import (
    Event,
    events_prune,
    newest_event_id,
    newest_visible_event_id,
    pruned_events_missed,
    pruned_through,
)
from rooms.services import room_delete, room_join, room_leave

pytestmark = pytest.mark.django_db


def _age_every_event() -> None:
    Event.objects.update(created_at=timezone.now() - timedelta(days=30))


def test_newest_event_id_is_the_highest_committed_id(alice, lobby):
    message_post(room=lobby, author=alice, body="hello")
    assert newest_event_id() == Event.objects.order_by("-id").values_list("id", flat=True).first()


def test_newest_event_id_after_pruning_every_event_is_the_pruned_through_mark(alice, lobby):
    message_post(room=lobby, author=alice, body="soon gone")
    newest = newest_event_id()
    _age_every_event()

    deleted, through = events_prune(older_than=timedelta(days=1))

    assert Event.objects.count() == 0
    assert deleted > 0
    assert through == newest == pruned_through()
    # The log has not gone back to its start: it stands where the last pruned event was.
    assert newest_event_id() == newest


def test_newest_event_id_after_a_partial_prune_is_the_newest_remaining_event(alice, lobby):
    message_post(room=lobby, author=alice, body="old")
    _age_every_event()
    message_post(room=lobby, author=alice, body="new")
    newest = Event.objects.order_by("-id").values_list("id", flat=True).first()

    _, through = events_prune(older_than=timedelta(days=1))

    assert through is not None and through < newest
    assert newest_event_id() == newest


# --- What one user may be told -------------------------------------------------------------------


def _newest_of(**filters: object) -> int:
    return Event.objects.filter(**filters).order_by("-id").values_list("id", flat=True).first() or 0


def test_newest_visible_event_id_leaves_out_rooms_the_user_is_not_in(alice, bob, mallory, lobby, secret):
    message_post(room=lobby, author=alice, body="for bob")
    message_post(room=secret, author=alice, body="not for bob")
    through = newest_event_id()

    assert newest_visible_event_id(user_id=bob.pk, through=through) == _newest_of(room=lobby)
    assert newest_visible_event_id(user_id=alice.pk, through=through) == through
    assert newest_visible_event_id(user_id=mallory.pk, through=through) == 0


def test_newest_visible_event_id_leaves_out_others_private_events_and_counts_ones_own(alice, bob, carol, lobby):
    message, _ = message_post(room=lobby, author=alice, body="read me")
    read_mark(user=bob, room=lobby, message_id=message.pk)
    bobs = newest_event_id()
    read_mark(user=carol, room=lobby, message_id=message.pk)

    assert newest_visible_event_id(user_id=bob.pk, through=newest_event_id()) == bobs


def test_newest_visible_event_id_counts_a_deleted_room_and_stops_at_through(alice, bob, lobby):
    first = newest_event_id()
    room_delete(actor=alice, room=lobby)
    deleted = newest_event_id()

    assert newest_visible_event_id(user_id=bob.pk, through=deleted) == deleted
    assert newest_visible_event_id(user_id=bob.pk, through=first) == first


# --- Resuming from below the pruned-through mark -------------------------------------------------


def _age() -> None:
    """Make every event so far old enough for any prune."""
    Event.objects.update(created_at=timezone.now() - timedelta(days=30))


def _prune() -> int:
    _, through = events_prune(older_than=timedelta(days=1))
    assert through is not None
    return through


def test_a_quiet_users_cursor_below_the_pruned_mark_missed_nothing(alice, bob, lobby, secret):
    cursor = newest_event_id()  # bob is up to date
    message_post(room=secret, author=alice, body="elsewhere")
    _age()

    through = _prune()

    assert cursor < through
    assert pruned_events_missed(user_id=bob.pk, after=cursor) is False
    assert pruned_events_missed(user_id=alice.pk, after=cursor) is True


def test_a_pruned_event_of_ones_room_after_the_cursor_was_missed(alice, bob, lobby):
    cursor = newest_event_id()
    message_post(room=lobby, author=alice, body="bob never saw this")
    _age()
    _prune()

    assert pruned_events_missed(user_id=bob.pk, after=cursor) is True
    assert pruned_events_missed(user_id=bob.pk, after=newest_event_id()) is False


def test_a_pruned_leaving_or_joining_after_the_cursor_was_missed(alice, bob, mallory, lobby):
    cursor = newest_event_id()
    room_leave(user=bob, room=lobby)
    room_join(user=mallory, room=lobby)
    _age()
    _prune()

    assert pruned_events_missed(user_id=bob.pk, after=cursor) is True
    assert pruned_events_missed(user_id=mallory.pk, after=cursor) is True


def test_pruned_events_of_a_room_from_before_joining_were_never_the_users(alice, mallory, lobby):
    cursor = newest_event_id()
    message_post(room=lobby, author=alice, body="before mallory")
    _age()
    room_join(user=mallory, room=lobby)
    _prune()

    assert pruned_events_missed(user_id=mallory.pk, after=cursor) is False


def test_later_prunes_raise_the_marks(alice, bob, lobby):
    message_post(room=lobby, author=alice, body="first")
    _age()
    _prune()
    cursor = newest_event_id()
    message_post(room=lobby, author=alice, body="second")
    _age()
    _prune()

    assert pruned_events_missed(user_id=bob.pk, after=cursor) is True
