"""Every read of the event record: where the log stands, the live pump's next events, a resume's replay."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import connection
from django.db.models import Exists, Max, OuterRef, Q, Value
from django.db.models.functions import Coalesce

from rooms.events.models import Event, EventLogState, PrunedEventMark
from rooms.models import Membership

if TYPE_CHECKING:
    from accounts.models import User

FETCH_BATCH = 500
REPLAY_BATCH = 500


def pruned_through() -> int:
    """Return the highest event id that pruning has removed (0 if none)."""
    state = EventLogState.objects.filter(pk=1).first()
    return state.pruned_through if state else 0


def newest_event_id() -> int:
    """Return the newest event id the log has committed, pruned or not.

    Not just the highest id left in the table: after a prune that removed
    every event, the log still stands at the pruned-through mark, and a
    client resuming from there has missed nothing.
    """
    return log_position()[0]


def log_position() -> tuple[int, int]:
    """Return (the newest event id, the pruned-through mark): `newest_event_id` and `pruned_through` at once."""
    pruned = pruned_through()
    newest = Event.objects.aggregate(newest=Max("id"))["newest"]
    return max(newest or 0, pruned), pruned


def newest_visible_event_id(*, user_id: int, through: int) -> int:
    """Return the newest event id up to `through` that the user may see, or 0.

    The events of their rooms (deleted ones too: their members hear of the
    deletion) and the events about them. One query; each room costs one
    backward step along the (room, id) index, and the events about the user
    one along (user, id). Plain SQL: the ORM took longer to build this query
    than the database to answer it, on every handshake.
    """
    event = Event._meta.db_table
    membership = Membership._meta.db_table
    # Table names come from the models, never from input.
    sql = (
        f"SELECT (SELECT MAX((SELECT e.id FROM {event} e WHERE e.room_id = m.room_id"  # noqa: S608
        f" AND NOT e.private AND e.id <= %s ORDER BY e.id DESC LIMIT 1)) FROM {membership} m WHERE m.user_id = %s),"
        f" (SELECT e.id FROM {event} e WHERE e.user_id = %s AND e.id <= %s ORDER BY e.id DESC LIMIT 1)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [through, user_id, user_id, through])
        in_rooms, about = cursor.fetchone()
    return max(in_rooms or 0, about or 0)


def pruned_events_missed(*, user_id: int, after: int) -> bool:
    """Return whether pruning removed an event after `after` that the user may see.

    One of the events about them, or of one of their rooms from their joining
    on (a room they left in that span has their leaving among the former).
    """
    if PrunedEventMark.objects.filter(user_id=user_id, through__gt=after).exists():
        return True
    in_their_rooms = PrunedEventMark.objects.filter(
        room_id=OuterRef("room_id"),
        through__gt=after,
        through__gte=Coalesce(OuterRef("joined_event_id"), Value(0)),
    )
    return Membership.objects.filter(user_id=user_id).filter(Exists(in_their_rooms)).exists()


def events_after(cursor: int) -> list[Event]:
    """Return up to FETCH_BATCH committed events after `cursor`, in id order (the live pump's read)."""
    return list(Event.objects.filter(id__gt=cursor).order_by("id")[:FETCH_BATCH])


def events_between(after: int, through: int) -> int:
    """Return how many events lie in (after, through]."""
    return Event.objects.filter(id__gt=after, id__lte=through).count()


def events_for_replay_batch(*, user: User, after: int, through: int) -> list[Event]:
    """Return, in id order, up to REPLAY_BATCH events in (after, through] that the user may see.

    Events about the user (their joins, removals, read markers) and the
    non-private events of rooms they are in, from the event that made them
    a member on; also those of rooms they left (or were removed from) in
    that span, up to their leaving, as a socket open all along would have
    had them. A deleted room's members keep their membership, so they hear
    of its deletion.
    """
    # The user's memberships first (their own index), then the span's events by
    # room id: joining events to memberships made PostgreSQL scan the membership
    # and room tables for every resume, 7 ms each in a reconnect storm.
    whole_span: list[int] = []
    visible = Q(user_id=user.pk)
    memberships = Membership.objects.filter(user_id=user.pk).values_list("room_id", "joined_event_id")
    for room_id, joined_event_id in memberships:
        if (joined_event_id or 0) <= after:
            whole_span.append(room_id)
        else:  # joined during the span: from their joining on
            visible |= Q(private=False, room_id=room_id, id__gte=joined_event_id)
    if whole_span:
        visible |= Q(private=False, room_id__in=whole_span)
    for room_id, first, left in _memberships_ended(user_id=user.pk, after=after, through=through):
        visible |= Q(private=False, room_id=room_id, id__gte=first, id__lt=left)
    return list(Event.objects.filter(id__gt=after, id__lte=through).filter(visible).order_by("id")[:REPLAY_BATCH])


def _memberships_ended(*, user_id: int, after: int, through: int) -> list[tuple[int, int, int]]:
    """Return (room id, first event id, leaving event id) for each membership that ended in (after, through]."""
    rows = (
        Event.objects.filter(
            user_id=user_id,
            id__gt=after,
            id__lte=through,
            type__in=[Event.Type.MEMBER_JOINED, Event.Type.ROOM_CREATED, Event.Type.MEMBER_LEFT],
        )
        .order_by("id")
        .values_list("id", "type", "room_id")
    )
    joined: dict[int, int] = {}
    ended = []
    for event_id, kind, room_id in rows:
        if kind == Event.Type.MEMBER_LEFT:
            # No join in the span: they were a member when it began.
            ended.append((room_id, joined.pop(room_id, after + 1), event_id))
        else:
            joined[room_id] = event_id
    return ended
