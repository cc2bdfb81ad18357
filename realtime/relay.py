"""Typing, presence, account notices and doorbells between processes: one channel per process.

The Channels tutorial gives every socket a channel of its own and puts it
in a group per room, so a typing notice to a 200-member room is 200
channel-layer deliveries, each through its socket's consumer, and every
socket holds a Redis subscription and a receiving task. Here each process
has one channel, in the groups of the rooms and users its sockets need
(the pump's index says which), and fans a message out to its own sockets,
encoded once. Nothing sent this way must arrive: persistent events come
from the database through `delivery.EventPump`; the doorbell only wakes it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import uuid
from typing import TYPE_CHECKING, Any

from channels.layers import get_channel_layer
from django.conf import settings

from core import metrics, publish
from realtime import presence

if TYPE_CHECKING:
    from realtime.delivery import EventPump

logger = logging.getLogger(__name__)

DOORBELL_GROUP = "events.doorbell"
# Names this process on its doorbells: it hears its own too, and its pump was woken at commit already.
PROCESS_TOKEN = uuid.uuid4().hex
# Presence changes remembered to drop their other copies: far more than are in flight at once.
CHANGES_REMEMBERED = 4096


def room_group(room_id: int) -> str:
    return f"room.{room_id}"


def is_in_memory(layer: Any) -> bool:
    return type(layer).__name__ == "InMemoryChannelLayer"


class Relay:
    """This process's channel: joins the groups its sockets need and hands what arrives to them."""

    def __init__(self, pump: EventPump) -> None:
        self.pump = pump
        self.channel: str | None = None
        self.joined: set[str] = set()
        self.changed = asyncio.Event()
        # The latest presence changes handed on, oldest first: the other copies are dropped.
        self.changes_seen: collections.OrderedDict[str, None] = collections.OrderedDict()

    def _seen(self, change: str) -> bool:
        """Return whether `change` was handed on already; remember it if not."""
        if change in self.changes_seen:
            return True
        self.changes_seen[change] = None
        if len(self.changes_seen) > CHANGES_REMEMBERED:
            self.changes_seen.popitem(last=False)
        return False

    def wanted(self, layer: Any) -> set[str]:
        groups = {room_group(room_id) for room_id in self.pump.by_room}
        groups.update(publish.user_group(user_id) for user_id in self.pump.by_user)
        if not is_in_memory(layer):
            # One process (the in-memory layer): the on-commit hook wakes the pump itself.
            groups.add(DOORBELL_GROUP)
        return groups

    def groups_changed(self) -> None:
        self.changed.set()

    async def run(self) -> None:
        """Receive for the life of the process; on an error, start over with a new channel.

        A receive is waited on without cancelling it: the pub/sub layer
        unsubscribes a channel whose receive is cancelled. The groups are
        joined again every CHANNEL_GROUP_REFRESH seconds, below the core
        layer's group_expiry (a Redis restart also forgets its groups). A
        channel given up after an error leaves its groups first, or they
        would keep collecting messages for it.
        """
        layer = get_channel_layer()
        if layer is None:
            return
        loop = asyncio.get_running_loop()
        refresh = float(settings.CHANNEL_GROUP_REFRESH)
        joined_at = 0.0
        receiving: asyncio.Future[Any] | None = None
        try:
            while True:
                try:
                    if self.channel is None:
                        self.channel = await layer.new_channel()
                        self.joined = set()
                        self.changed.set()
                    if loop.time() - joined_at > refresh:
                        self.joined = set()  # join every group again
                        joined_at = loop.time()
                        self.changed.set()
                    if self.changed.is_set():
                        await self._reconcile(layer)
                    if receiving is None:
                        receiving = asyncio.ensure_future(layer.receive(self.channel))
                    if receiving.done():
                        done = {receiving}
                    else:
                        changed = asyncio.ensure_future(self.changed.wait())
                        done, _ = await asyncio.wait(
                            {receiving, changed}, timeout=refresh / 2, return_when=asyncio.FIRST_COMPLETED
                        )
                        changed.cancel()
                    if receiving in done:
                        message, receiving = receiving.result(), None
                        self.dispatch(message)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # Redis is away or restarted: the pump's poll covers events; start over shortly.
                    metrics.channel_layer_error("relay_receive")
                    logger.warning("relay: channel failed; subscribing again", exc_info=True)
                    _cancel(receiving)
                    receiving = None
                    await self._leave_all(layer)
                    await asyncio.sleep(1)
        finally:
            _cancel(receiving)

    async def _reconcile(self, layer: Any) -> None:
        self.changed.clear()
        wanted = self.wanted(layer)
        for group in wanted - self.joined:
            await layer.group_add(group, self.channel)
            self.joined.add(group)
        for group in self.joined - wanted:
            await layer.group_discard(group, self.channel)
            self.joined.discard(group)

    async def _leave_all(self, layer: Any) -> None:
        channel, joined = self.channel, self.joined
        self.channel, self.joined = None, set()
        if channel is None:
            return
        with contextlib.suppress(Exception):
            for group in joined:
                await layer.group_discard(group, channel)

    def dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "events.doorbell":
            if message.get("from") != PROCESS_TOKEN:
                self.pump.wake()
        elif kind == "typing.relay":
            user = message["user"]
            frame = {"type": "typing", "room": message["room"], "user": user}
            self.pump.relay(frame, room_id=message["room"], skip_user=user["id"])
        elif kind == "presence.relay":
            change = message.get("change")
            if change is not None and self._seen(change):
                return  # another room's copy of a change already handed on
            frame = {"type": "presence", "user": message["user"], "status": message["status"]}
            self.pump.relay_once(frame, room_ids=message.get("rooms") or [message["room"]], skip_user=message["user"])
        elif kind == "user.deactivated":
            self.pump.deactivated(message["user"])
        elif kind == "session.ended":
            self.pump.session_ended(message["user"], session=message.get("session"), family=message.get("family"))

    async def heartbeat(self) -> None:
        """Renew the presence lease of every socket of this process, in one round trip."""
        while True:
            await asyncio.sleep(presence.HEARTBEAT_SECONDS)
            sockets = [(listener.user_id, listener.socket_id) for listener in list(self.pump.listeners)]
            try:
                await presence.sockets_alive(sockets)
            except Exception:
                logger.warning("presence: heartbeat failed", exc_info=True)


async def send_to_room(room_id: int, message: dict[str, Any]) -> None:
    """Send `message` to every process with a socket in the room."""
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(room_group(room_id), {**message, "room": room_id})


def _cancel(future: asyncio.Future[Any] | None) -> None:
    if future is not None and not future.done():
        future.cancel()
