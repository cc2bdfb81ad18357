"""Reaching a user's open sockets about their account (the consumer joins `user_group`)."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def notify_user_sockets(user_id: int, message: dict[str, Any]) -> None:
    """Send a channel-layer message to every socket of a user, on any process."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        # The user's id travels along: each process's relay finds that user's sockets by it.
        async_to_sync(layer.group_send)(user_group(user_id), {**message, "user": user_id})
    except Exception:
        logger.warning("could not reach the sockets of user %s", user_id, exc_info=True)
