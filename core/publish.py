"""The one interface through which apps hand things to live sockets, with or without `realtime` installed.

- Committed events: the event record's writer calls `event_committed` from
  `transaction.on_commit`, so nothing is announced that a rollback could take
  back. Subscribers (the realtime app's doorbell, the event counter for
  /metrics, tests' recorders) register with `subscribe`.
- Notices to one person's sockets (deactivation, ended sessions) go through
  the channel layer with `notify_user`; every process with a socket of that
  user has joined `user_group(user_id)`.

Apps import this module, never `realtime`: management commands, the admin
and tests work the same whether or not any socket is open.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

# Called with each committed event (a `rooms.events.Event`); core knows no app's models.
_subscribers: list[Callable[[Any], None]] = []


def subscribe(callback: Callable[[Any], None]) -> Callable[[], None]:
    """Call `callback` with every committed event; return a function that stops it."""
    _subscribers.append(callback)
    return lambda: _subscribers.remove(callback)


def event_committed(event: Any) -> None:
    """Hand a committed event to every subscriber; a failing one never undoes the commit."""
    for callback in list(_subscribers):
        try:
            callback(event)
        except Exception:
            # The event is safe in the database; clients catch up on resume.
            logger.exception("publishing event %s failed", getattr(event, "id", None))


def user_group(user_id: int) -> str:
    """The channel-layer group of every process holding a socket of this user."""
    return f"user.{user_id}"


def notify_user(user_id: int, message: dict[str, Any]) -> None:
    """Send a channel-layer message to every socket of a user, on any process."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        # The user's id travels along: each process's relay finds that user's sockets by it.
        async_to_sync(layer.group_send)(user_group(user_id), {**message, "user": user_id})
    except Exception:
        logger.warning("could not reach the sockets of user %s", user_id, exc_info=True)
