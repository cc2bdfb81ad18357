"""The event record: every committed state change clients may hear about.

`event_record` is the only writer of `Event` rows. It must be called inside
the service's transaction, as the last write of the action, so that the lock
it takes is held only for the moment before commit.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from rooms import realtime
from rooms.models import Event, Room

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
    _test_hold(payload)
    transaction.on_commit(lambda: realtime.publish_event(event))
    return event


def _test_hold(payload: dict[str, Any]) -> None:
    """Test hook (DEBUG only): hold this transaction open before commit.

    With CHAT_TEST_HOLD_BEFORE_COMMIT="marker:seconds", an event whose message
    body contains the marker sleeps after taking its id, so delivery tests can
    provoke a lower id committing after a higher one was taken elsewhere.
    """
    hold = settings.TEST_HOLD_BEFORE_COMMIT
    if not hold or not settings.DEBUG:
        return
    marker, _, seconds = hold.rpartition(":")
    body = payload.get("message", {}).get("body", "") if isinstance(payload.get("message"), dict) else ""
    if marker and marker in body:
        time.sleep(float(seconds))
