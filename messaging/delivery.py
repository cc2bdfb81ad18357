"""Live delivery of committed events to this process's sockets, in event-id order.

The database is the log and the channel layer is only a doorbell:

- Services write each event under a lock that makes event ids commit in id
  order (`rooms.events`), so the committed events always form a prefix of
  the id sequence: nothing can later appear below an id already seen.
- One `EventPump` per process reads `id > cursor` from the database whenever
  a doorbell rings (a local on_commit hook, or a channel-layer message from
  another process) and at least every `POLL_INTERVAL` seconds, then hands
  each event, in order, to every local socket.
- A lost doorbell (a full channel, a Redis restart, an expired group) only
  delays delivery until the next ring or poll; it can never reorder or lose
  an event. A socket that falls too far behind is closed with 4009 and
  resumes from its cursor.

Frames are shaped per recipient by `event_frame`, which the resume replay
uses too, so live and replayed frames can never drift.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
from typing import TYPE_CHECKING, Any, Protocol

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db.models import F, Max, Q
from django.db.models.functions import Coalesce

from chatproject import metrics
from rooms import realtime
from rooms.models import Event, EventLogState, Membership

if TYPE_CHECKING:
    from accounts.models import User

logger = logging.getLogger(__name__)

DOORBELL_GROUP = "events.doorbell"
POLL_INTERVAL = 1.0
# Seconds between re-joins of the doorbell group (see EventPump._listen_for_doorbells).
DOORBELL_REJOIN = 60.0
FETCH_BATCH = 500
REPLAY_BATCH = 500


# --- Frames --------------------------------------------------------------------------


class SocketState(Protocol):
    """What a socket knows of its user's rooms; updated as events pass.

    `roles` maps each room to the user's role; `since` to the id of the event
    that made them a member, so nothing from before they joined gets through.
    """

    user_id: int
    roles: dict[int, str]
    since: dict[int, int]


def _personal_room(room: dict[str, Any], role: str | None) -> dict[str, Any]:
    return {**room, "my_role": role}


def _is_added(event: Event, user_id: int) -> bool:
    """Whether this event makes `user_id` a member of its room."""
    if event.type == Event.Type.MEMBER_JOINED:
        return event.user_id == user_id
    if event.type == Event.Type.ROOM_CREATED:
        members = event.payload.get("room", {}).get("members")
        if members is not None:
            return any(member["id"] == user_id for member in members)
        return event.user_id == user_id
    return False


def event_frame(event: Event, state: SocketState, *, replaying: bool = False) -> dict[str, Any] | None:
    """Return the frame `state`'s user gets for `event` (None for none), updating `state`.

    Live, an event is for the socket only if its room is among the socket's
    rooms or the event is about the user; in a replay the database query has
    already decided visibility.
    """
    user_id = state.user_id
    room_id = event.room_id
    payload = event.payload
    kind = event.type
    about_me = event.user_id == user_id

    if event.private:
        if not about_me:
            return None
        if kind == Event.Type.READ:
            return {"type": "read", "event_id": event.id, "room": room_id, "message_id": payload["message_id"]}
        return None

    if _is_added(event, user_id):
        role = payload.get("role", "member")
        state.roles[room_id] = role
        state.since[room_id] = event.id
        return {"type": "room.added", "event_id": event.id, "room": _personal_room(payload["room"], role)}

    if kind == Event.Type.MEMBER_LEFT and about_me:
        known = state.roles.pop(room_id, None)
        state.since.pop(room_id, None)
        if known is None and not replaying:
            return None
        return {"type": "room.removed", "event_id": event.id, "room": room_id}

    if not replaying and (room_id not in state.roles or event.id < state.since.get(room_id, 0)):
        return None

    if kind in (Event.Type.MESSAGE_NEW, Event.Type.MESSAGE_UPDATED):
        return {"type": kind, "event_id": event.id, "room": room_id, "message": payload["message"]}
    if kind == Event.Type.ROOM_UPDATED:
        return {
            "type": "room.updated",
            "event_id": event.id,
            "room": _personal_room(payload["room"], state.roles.get(room_id)),
        }
    if kind == Event.Type.ROOM_DELETED:
        state.roles.pop(room_id, None)
        state.since.pop(room_id, None)
        return {"type": "room.removed", "event_id": event.id, "room": room_id}
    if kind == Event.Type.MEMBER_JOINED:
        return {"type": "member.joined", "event_id": event.id, "room": room_id, "user": payload["user"]}
    if kind == Event.Type.MEMBER_LEFT:
        return {"type": "member.left", "event_id": event.id, "room": room_id, "user": payload["user"]}
    if kind == Event.Type.MEMBER_ROLE:
        if not about_me:
            return None
        state.roles[room_id] = payload["role"]
        return {
            "type": "room.updated",
            "event_id": event.id,
            "room": _personal_room(payload["room"], payload["role"]),
        }
    return None


def encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


# --- Reads for connect and resume --------------------------------------------------------


def newest_event_id() -> int:
    return Event.objects.aggregate(newest=Coalesce(Max("id"), 0))["newest"]


def pruned_through() -> int:
    """Return the highest event id that pruning has removed (0 if none)."""
    state = EventLogState.objects.filter(pk=1).first()
    return state.pruned_through if state else 0


def member_rooms(user_id: int) -> tuple[dict[int, str], dict[int, int]]:
    """Return ({room id: role}, {room id: joined event id}) for the live rooms a user is in."""
    rows = Membership.objects.filter(user_id=user_id, room__deleted_at__isnull=True).values_list(
        "room_id", "role", "joined_event_id"
    )
    roles: dict[int, str] = {}
    since: dict[int, int] = {}
    for room_id, role, joined_event_id in rows:
        roles[room_id] = role
        since[room_id] = joined_event_id or 0
    return roles, since


def events_for_replay_batch(*, user: User, after: int, through: int) -> list[Event]:
    """Return, in id order, up to REPLAY_BATCH events in (after, through] that the user may see.

    Events about the user (their joins, removals, read markers) and the
    non-private events of rooms they are in, from the event that made them
    a member on; also those of rooms they left (or were removed from) in
    that span, up to their leaving, as a socket open all along would have
    had them. A deleted room's members keep their membership, so they hear
    of its deletion.
    """
    visible = Q(user_id=user.pk) | Q(
        private=False,
        room__memberships__user_id=user.pk,
        id__gte=Coalesce(F("room__memberships__joined_event_id"), 0),
    )
    for room_id, first, left in _memberships_ended(user_id=user.pk, after=after, through=through):
        visible |= Q(private=False, room_id=room_id, id__gte=first, id__lt=left)
    return list(
        Event.objects.filter(id__gt=after, id__lte=through).filter(visible).distinct().order_by("id")[:REPLAY_BATCH]
    )


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


# --- The per-process pump ------------------------------------------------------------------


class Listener(Protocol):
    def offer(self, event: Event, cache: dict[tuple[int, str], str]) -> None: ...


class EventPump:
    """Reads committed events in id order and offers each to every registered socket."""

    def __init__(self) -> None:
        self.cursor: int | None = None
        self.listeners: set[Listener] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._doorbell_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def register(self, listener: Listener) -> None:
        await self._ensure_running()
        self.listeners.add(listener)

    def unregister(self, listener: Listener) -> None:
        self.listeners.discard(listener)

    def ring(self) -> None:
        """Wake the pump; safe to call from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        # A RuntimeError means the loop is shutting down: nobody to wake.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._wake.set)

    async def _ensure_running(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is not None and not self._task.done() and self._loop is loop:
            return
        self._loop = loop
        self._wake = asyncio.Event()
        if self.cursor is None:
            self.cursor = await database_sync_to_async(newest_event_id)()
        # A context of their own: the pump serves every socket, so its log lines
        # must not carry the request id of the connection that happened to start it.
        self._task = loop.create_task(self._run(), name="event-pump", context=contextvars.Context())
        self._doorbell_task = loop.create_task(
            self._listen_for_doorbells(), name="event-doorbell", context=contextvars.Context()
        )

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_INTERVAL)
            self._wake.clear()
            if not self.listeners:
                # Nobody to deliver to: skip the read, but keep the cursor current
                # so a later socket is not flooded with old events. Only move it if
                # still nobody listens: a socket that registered meanwhile may hold
                # a starting point below the newest id.
                newest = await self._safe(newest_event_id, self.cursor)
                if not self.listeners:
                    self.cursor = newest
                continue
            await self.pump_once()

    async def pump_once(self) -> None:
        """Read and deliver every committed event past the cursor."""
        while True:
            cursor = self.cursor or 0
            events = await self._safe(_events_after, [], cursor)
            if not events:
                return
            cache: dict[tuple[int, str], str] = {}
            for event in events:
                for listener in list(self.listeners):
                    listener.offer(event, cache)
                self.cursor = event.id
            if len(events) < FETCH_BATCH:
                return

    async def _safe(self, function: Any, fallback: Any, *args: Any) -> Any:
        try:
            return await database_sync_to_async(function)(*args)
        except Exception:
            # The database is away: keep the cursor, try again at the next tick.
            logger.warning("event pump: database read failed", exc_info=True)
            return fallback

    async def _listen_for_doorbells(self) -> None:
        """Turn channel-layer doorbells from other processes into wake-ups.

        One channel for the life of the process, re-joined to the group every
        DOORBELL_REJOIN seconds (less if CHANNEL_GROUP_REFRESH is shorter): a Redis restart forgets the core layer's
        groups, and they expire. A channel given up after an error leaves the
        group first, or every later doorbell would pile up for it (bounded by
        the core layer's capacity, without bound under pub/sub).
        """
        layer = get_channel_layer()
        if layer is None or _is_in_memory(layer):
            return  # one process: the local on_commit hook rings directly
        loop = asyncio.get_running_loop()
        # Below the core layer's group_expiry (settings.CHANNEL_GROUP_REFRESH).
        rejoin = min(DOORBELL_REJOIN, float(settings.CHANNEL_GROUP_REFRESH))
        channel: str | None = None
        joined_at = 0.0
        # Waited on without cancelling: the pub/sub layer unsubscribes a channel whose receive is cancelled.
        receiving: asyncio.Future[Any] | None = None
        try:
            while True:
                try:
                    if channel is None:
                        # The default prefix, as the consumers': the core layer reads
                        # every process-local channel of one prefix with one shared
                        # BZPOPMIN, and a second prefix would hold that read's lock
                        # while the sockets' typing, presence and 4003s wait.
                        channel = await layer.new_channel()
                        await layer.group_add(DOORBELL_GROUP, channel)
                        joined_at = loop.time()
                    elif loop.time() - joined_at > rejoin:
                        await layer.group_add(DOORBELL_GROUP, channel)
                        joined_at = loop.time()
                    if receiving is None:
                        receiving = asyncio.ensure_future(layer.receive(channel))
                    done, _ = await asyncio.wait({receiving}, timeout=rejoin / 2)
                    if not done:
                        continue
                    message, receiving = receiving.result(), None
                    if message.get("type") == "events.doorbell":
                        self._wake.set()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # Redis is away or restarted: polling covers the gap; re-join shortly.
                    metrics.channel_layer_error("doorbell_receive")
                    logger.warning("event pump: doorbell channel failed; re-subscribing", exc_info=True)
                    _cancel(receiving)
                    receiving = None
                    if channel is not None:
                        with contextlib.suppress(Exception):
                            await layer.group_discard(DOORBELL_GROUP, channel)
                    channel = None
                    await asyncio.sleep(1)
        finally:
            _cancel(receiving)


def _cancel(future: asyncio.Future[Any] | None) -> None:
    if future is not None and not future.done():
        future.cancel()


def _events_after(cursor: int) -> list[Event]:
    return list(Event.objects.filter(id__gt=cursor).order_by("id")[:FETCH_BATCH])


def _is_in_memory(layer: Any) -> bool:
    return type(layer).__name__ == "InMemoryChannelLayer"


pump = EventPump()


def _ring_everyone(event: Event) -> None:
    """On commit: wake this process's pump at once, and the other processes' through the channel layer."""
    pump.ring()
    layer = get_channel_layer()
    if layer is None or _is_in_memory(layer):
        return
    try:
        async_to_sync(layer.group_send)(DOORBELL_GROUP, {"type": "events.doorbell", "id": event.id})
    except Exception:
        metrics.channel_layer_error("doorbell_send")
        # The event is committed; other processes pick it up at their next poll.
        logger.warning("doorbell for event %s not sent", event.id, exc_info=True)


def install() -> None:
    if getattr(settings, "REALTIME_DOORBELL", True):
        realtime.subscribe(_ring_everyone)
