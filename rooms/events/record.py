"""The only writer of the event record.

`event_record` must be called inside the service's transaction, as the last
write of the action, so that the lock it takes is held only for the moment
before commit. Events already written change in two ways only, both to
forget: `event_payloads_redact` takes a deleted message's text out of the
events that carried it, and `event_payloads_replace_user` an erased
account's name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import connection, transaction
from django.db.models import Q

from core import publish
from rooms.events.models import Event
from rooms.models import Room

# Events read at a time when an erased account's name is taken out of them.
REWRITE_BATCH = 500

# Any constant will do; it only has to be the same for every writer.
EVENT_LOCK_KEY = 0x63686174  # "chat"


def _insert_in_order(event: Event) -> None:
    """Insert `event`, serialising event inserts until commit so that event ids commit in id order.

    Without the lock, a transaction that took id 10 may commit after one that
    took id 11, and a client resuming from 11 would never see 10. On
    PostgreSQL the lock (a transaction-level advisory lock) and the insert are
    one statement, so a post costs no extra round trip for it. SQLite needs
    no lock: its writers already hold the database lock from BEGIN IMMEDIATE
    to commit.
    """
    if connection.vendor != "postgresql":
        event.save(force_insert=True)
        return
    fields = [field for field in Event._meta.concrete_fields if not field.primary_key]
    values = [field.get_db_prep_save(field.pre_save(event, add=True), connection) for field in fields]
    columns = ", ".join(connection.ops.quote_name(field.get_attname_column()[1] or "") for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    table = connection.ops.quote_name(Event._meta.db_table)
    # Table and column names come from the model, never from input.
    sql = (
        "WITH event_lock AS (SELECT pg_advisory_xact_lock(%s)) "  # noqa: S608
        f"INSERT INTO {table} ({columns}) SELECT {placeholders} FROM event_lock RETURNING id"
    )
    with connection.cursor() as cursor:
        # The CTE's row is produced (the lock taken) before the insert draws its id.
        cursor.execute(sql, [EVENT_LOCK_KEY, *values])
        event.pk = cursor.fetchone()[0]
    event._state.adding = False
    event._state.db = connection.alias


def event_record(
    *,
    type: Event.Type,
    room: Room | int,
    payload: dict[str, Any],
    user_id: int | None = None,
    actor_id: int | None = None,
    message_id: int | None = None,
    private: bool = False,
) -> Event:
    """Write one event in the current transaction and publish it after commit."""
    if not connection.in_atomic_block:
        raise RuntimeError("event_record must run inside the action's transaction")
    event = Event(
        type=type,
        room_id=room if isinstance(room, int) else room.pk,
        user_id=user_id,
        actor_id=actor_id,
        message_id=message_id,
        private=private,
        payload=payload,
    )
    _insert_in_order(event)
    transaction.on_commit(lambda: publish.event_committed(event))
    return event


def event_payloads_redact(*, message_id: int, payload: dict[str, Any]) -> int:
    """Replace the payload of every event about a message (its deletion): replays must not carry the old text.

    Call inside the deleting service's transaction; return how many events changed.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("event_payloads_redact must run inside the action's transaction")
    return Event.objects.filter(message_id=message_id).update(payload=payload)


def _with_user_replaced(value: Any, user_id: int, replacement: dict[str, Any]) -> tuple[Any, bool]:
    """Return `value` with every user shape of `user_id` in it replaced, and whether any was."""
    if isinstance(value, dict):
        if value.get("id") == user_id and "username" in value:
            return dict(replacement), True
        replaced = False
        result = {}
        for key, item in value.items():
            result[key], hit = _with_user_replaced(item, user_id, replacement)
            replaced = replaced or hit
        return result, replaced
    if isinstance(value, list):
        pairs = [_with_user_replaced(item, user_id, replacement) for item in value]
        return [item for item, _ in pairs], any(hit for _, hit in pairs)
    return value, False


def event_payloads_replace_user(
    *, user_id: int, replacement: dict[str, Any], message_ids: Iterable[int] | None = None
) -> int:
    """Replace a user's shape in every event that carries it (an erased account): replays must not bring back the name.

    The events that can carry it: those about the user or by them, those about
    their messages (`message_ids`, a list or a subquery: the author in
    message.updated after a reaction), and those of direct rooms they were in (the member list). Call
    inside the erasing service's transaction; return how many events changed.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("event_payloads_replace_user must run inside the action's transaction")
    direct_rooms = Room.objects.filter(
        Q(memberships__user_id=user_id) | Q(pk__in=Event.objects.filter(user_id=user_id).values("room_id")),
        kind=Room.Kind.DIRECT,
    ).values("pk")
    carrying = Q(user_id=user_id) | Q(actor_id=user_id) | Q(room_id__in=direct_rooms)
    if message_ids is not None:
        carrying |= Q(message_id__in=message_ids)
    # Ids first, then batches: no cursor stays open over the table being rewritten.
    ids = list(Event.objects.filter(carrying).order_by("id").values_list("id", flat=True))
    changed = 0
    for start in range(0, len(ids), REWRITE_BATCH):
        for event in Event.objects.filter(pk__in=ids[start : start + REWRITE_BATCH]).only("id", "payload"):
            payload, replaced = _with_user_replaced(event.payload, user_id, replacement)
            if replaced:
                Event.objects.filter(pk=event.pk).update(payload=payload)
                changed += 1
    return changed
