"""The only writer of the event record.

`event_record` must be called inside the service's transaction, as the last
write of the action, so that the lock it takes is held only for the moment
before commit. `event_payloads_redact` is the one change ever made to an
event already written: a deleted message's text leaves the events that carried it.
"""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction

from core import publish
from rooms.events.models import Event
from rooms.models import Room

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
