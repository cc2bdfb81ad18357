"""The bridge from committed events to open sockets.

Services never call this directly: `rooms.events.event_record` schedules
`publish_event` with `transaction.on_commit`, so nothing is announced that a
rollback could take back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from rooms.models import Event

logger = logging.getLogger(__name__)

# Subscribers called with each committed event; the WebSocket layer adds its
# publisher here, and tests add recorders.
_subscribers: list[Callable[[Event], None]] = []


def subscribe(callback: Callable[[Event], None]) -> Callable[[], None]:
    """Call `callback` with every committed event; return a function that stops it."""
    _subscribers.append(callback)
    return lambda: _subscribers.remove(callback)


def publish_event(event: Event) -> None:
    """Hand a committed event to every subscriber; a failing one never undoes the commit."""
    for callback in list(_subscribers):
        try:
            callback(event)
        except Exception:
            # The event is safe in the database; clients catch up on resume.
            logger.exception("publishing event %s failed", event.id)
