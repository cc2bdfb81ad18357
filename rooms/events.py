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


def _lock_event_sequence() -> None:
    """Serialise event inserts until commit, so event ids commit in id order.

    Without it, a transaction that took id 10 may commit after one that took
    id 11, and a client resuming from 11 would never see 10. SQLite needs no
    lock: its writers already hold the database lock from BEGIN IMMEDIATE to
    commit.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [EVENT_LOCK_KEY])


def event_record(
    *,
    type: Event.Type,
    room: Room,
    payload: dict[str, Any],
    user_id: int | None = None,
    actor_id: int | None = None,
    message_id: int | None = None,
    private: bool = False,
) -> Event:
    """Write one event in the current transaction and publish it after commit."""
    if not connection.in_atomic_block:
        raise RuntimeError("event_record must run inside the action's transaction")
    _lock_event_sequence()
    event = Event.objects.create(
        type=type,
        room=room,
        user_id=user_id,
        actor_id=actor_id,
        message_id=message_id,
        private=private,
        payload=payload,
    )
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
