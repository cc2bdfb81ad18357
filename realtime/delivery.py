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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from core import metrics, publish
from core.db import run_db
from realtime.relay import DOORBELL_GROUP, PROCESS_TOKEN, Relay, is_in_memory
from rooms import events
from rooms.events import Event
from rooms.selectors import member_rooms

if TYPE_CHECKING:
    from datetime import datetime


logger = logging.getLogger(__name__)

POLL_INTERVAL = 1.0
# Why a member.left event's member went (rooms.services._remove_membership), as room.removed
# and member.left frames say it; a room deleted under its members is "deleted".
LEFT_REASONS = frozenset({"left", "kicked", "banned"})


# --- Frames --------------------------------------------------------------------------


class SocketState(Protocol):
    """What a socket knows of its user's rooms; updated as events pass.

    `roles` maps each room to the user's role; `since` to the id of the event
    that made them a member, so nothing from before they joined gets through.
    """

    user_id: int
    roles: dict[int, str]
    since: dict[int, int]
    # The last `user.updated` change passed on, per user it was about.
    user_changes: dict[int, str]


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
        if kind == Event.Type.THREAD_READ:
            return {
                "type": "thread.read",
                "event_id": event.id,
                "room": room_id,
                "root": payload["root"],
                "message_id": payload["message_id"],
            }
        return None

    if _is_added(event, user_id):
        role = payload.get("role", "member")
        state.roles[room_id] = role
        state.since[room_id] = event.id
        room = _personal_room(payload["room"], role)
        # The newcomer's read marker starts at the newest message of their joining.
        room["last_read_message_id"] = payload.get("last_read_message_id", 0)
        return {"type": "room.added", "event_id": event.id, "room": room}

    if kind == Event.Type.MEMBER_LEFT and about_me:
        known = state.roles.pop(room_id, None)
        state.since.pop(room_id, None)
        if known is None and not replaying:
            return None
        # Why: left, kicked or banned (rooms.services._remove_membership).
        return {"type": "room.removed", "event_id": event.id, "room": room_id, "reason": _left_why(payload)}

    if not replaying and (room_id not in state.roles or event.id < state.since.get(room_id, 0)):
        return None

    if kind in (Event.Type.MESSAGE_NEW, Event.Type.MESSAGE_UPDATED):
        frame = {"type": kind, "event_id": event.id, "room": room_id, "message": payload["message"]}
        if "thread" in payload:
            # A reply's root summary after it (messaging.threads), so open clients update the root.
            frame["thread"] = payload["thread"]
        return frame
    if kind == Event.Type.ROOM_UPDATED:
        return {
            "type": "room.updated",
            "event_id": event.id,
            "room": _personal_room(payload["room"], state.roles.get(room_id)),
        }
    if kind == Event.Type.ROOM_DELETED:
        state.roles.pop(room_id, None)
        state.since.pop(room_id, None)
        return {"type": "room.removed", "event_id": event.id, "room": room_id, "reason": "deleted"}
    if kind == Event.Type.MEMBER_JOINED:
        return {"type": "member.joined", "event_id": event.id, "room": room_id, "user": payload["user"]}
    if kind == Event.Type.MEMBER_LEFT:
        return {
            "type": "member.left",
            "event_id": event.id,
            "room": room_id,
            "user": payload["user"],
            "reason": _left_why(payload),
        }
    if kind == Event.Type.USER_UPDATED:
        # One event per room the user is in: the first this socket may see speaks for all.
        return _user_updated_frame(event, state)
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


def _left_why(payload: dict[str, Any]) -> str:
    """Return why a member left: "left", "kicked" or "banned" (as the event recorded it)."""
    reason = payload.get("reason")
    return reason if reason in LEFT_REASONS else "left"


def _user_updated_frame(event: Event, state: SocketState) -> dict[str, Any] | None:
    user = event.payload["user"]
    change = event.payload["change"]
    if state.user_changes.get(user["id"]) == change:
        return None
    state.user_changes[user["id"]] = change
    return {"type": "user.updated", "event_id": event.id, "user": user}


def event_already_sent(event: Event, state: SocketState) -> None:
    """Note an event the client had before it resumed (its cursor's), so that its repeats are not sent."""
    if event.type == Event.Type.USER_UPDATED:
        state.user_changes[event.payload["user"]["id"]] = event.payload["change"]


def encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


# --- Where a new socket starts ----------------------------------------------------------


@dataclass(frozen=True)
class SocketStart:
    """Where a new socket starts.

    `newest` is the log's newest event id: the socket passes every event up
    to it (its floor) and a resume replays up to it. `told` is what its user
    is told (`hello`, `resume.done`): the newest event id they may see, at
    least the pruned-through mark. The events in between belong to rooms
    they are not in, so a client resuming from `told` misses none of its own.
    """

    newest: int
    told: int
    pruned: int
    roles: dict[int, str]
    since: dict[int, int]


def socket_start(user_id: int) -> SocketStart:
    """Return what a new socket starts from: where the log stands, what its user may be told, their rooms.

    One database call for all (a handshake used to queue for two). The
    memberships are read after the newest id, so every join up to it is in them.
    """
    newest, pruned = events.log_position()
    told = max(events.newest_visible_event_id(user_id=user_id, through=newest), pruned)
    roles, since = member_rooms(user_id)
    return SocketStart(newest=newest, told=told, pruned=pruned, roles=roles, since=since)


# --- The per-process pump ------------------------------------------------------------------


class EncodedFrame:
    """A frame encoded once for every socket that gets it: text, and Daphne's pre-framed bytes."""

    __slots__ = ("frame_type", "prepared", "text")

    def __init__(self, frame_type: str, text: str) -> None:
        self.frame_type = frame_type
        self.text = text
        self.prepared: Any = None

    def prepared_for(self, factory: Any) -> Any:
        """Return the WebSocket message framed once by `factory` (every socket of a process shares one)."""
        if self.prepared is None:
            self.prepared = factory.prepareMessage(self.text.encode())
        return self.prepared


class Delivery:
    """One event on its way to this process's sockets: its frames encoded once, and how many were written."""

    __slots__ = ("encoded", "event", "written")

    def __init__(self, event: Event) -> None:
        self.event = event
        self.encoded: dict[str, EncodedFrame] = {}
        self.written: dict[str, int] = {}

    def shared(self, frame: dict[str, Any]) -> EncodedFrame:
        """Return `frame` encoded; call only for frames every recipient gets alike."""
        encoded = self.encoded.get(frame["type"])
        if encoded is None:
            encoded = self.encoded[frame["type"]] = EncodedFrame(frame["type"], encode(frame))
        return encoded

    def count(self, frame_type: str) -> None:
        self.written[frame_type] = self.written.get(frame_type, 0) + 1

    def flush_metrics(self) -> None:
        # Counted per event, not per socket, so a delivery costs a socket write and little else.
        created_at: datetime | None = self.event.created_at
        for frame_type, count in self.written.items():
            metrics.event_frames_sent(frame_type, count, created_at)
            created_at = None  # one latency sample per event and process


class Listener(Protocol):
    user_id: int
    socket_id: str
    roles: dict[int, str]

    def offer(self, event: Event, delivery: Delivery) -> None: ...

    def deliver(self, encoded: EncodedFrame) -> None: ...

    def deactivated(self) -> None: ...

    def session_ended(self, *, session: str | None, family: str | None) -> None: ...


class EventPump:
    """Reads committed events in id order and offers each to the sockets it may concern.

    Sockets are indexed by room and by user, so an event costs work only for
    its room's members (and the user it is about), not for every socket of
    the process. A socket still in its handshake (not yet "settled") sees
    every event, because it does not know its rooms yet.
    """

    def __init__(self) -> None:
        self.cursor: int | None = None
        self.listeners: set[Listener] = set()
        self.unsettled: set[Listener] = set()
        self.by_room: dict[int, set[Listener]] = {}
        self.by_user: dict[int, set[Listener]] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.relay_channel = Relay(self)

    async def register(self, listener: Listener) -> None:
        """Offer every event from now on to `listener`, until it settles on its rooms."""
        await self._ensure_running()
        self.listeners.add(listener)
        self.unsettled.add(listener)

    def settle(self, listener: Listener) -> None:
        """From now on offer `listener` only the events of its rooms and those about its user."""
        if listener not in self.listeners:
            return
        self.unsettled.discard(listener)
        self.by_user.setdefault(listener.user_id, set()).add(listener)
        for room_id in listener.roles:
            self.by_room.setdefault(room_id, set()).add(listener)
        self.relay_channel.groups_changed()

    def room_joined(self, listener: Listener, room_id: int) -> None:
        if listener in self.listeners and listener not in self.unsettled:
            self.by_room.setdefault(room_id, set()).add(listener)
            self.relay_channel.groups_changed()

    def room_left(self, listener: Listener, room_id: int) -> None:
        _discard(self.by_room, room_id, listener)
        self.relay_channel.groups_changed()

    def unregister(self, listener: Listener) -> None:
        self.listeners.discard(listener)
        self.unsettled.discard(listener)
        _discard(self.by_user, listener.user_id, listener)
        for room_id in list(listener.roles):
            _discard(self.by_room, room_id, listener)
        self.relay_channel.groups_changed()

    def wake(self) -> None:
        """Read the log now (a doorbell from another process rang)."""
        self._wake.set()

    def relay(self, frame: dict[str, Any], *, room_id: int, skip_user: int) -> None:
        """Hand a typing or presence frame to this process's sockets in the room, except `skip_user`'s."""
        encoded = EncodedFrame(frame["type"], encode(frame))
        written = 0
        for listener in list(self.by_room.get(room_id, ())):
            if listener.user_id != skip_user:
                listener.deliver(encoded)
                written += 1
        if written:
            metrics.frames_sent(frame["type"], written)

    def relay_once(self, frame: dict[str, Any], *, room_ids: list[int], skip_user: int) -> None:
        """Hand a frame to this process's sockets in any of `room_ids`, once each, except `skip_user`'s."""
        listeners: set[Listener] = set()
        for room_id in room_ids:
            listeners.update(self.by_room.get(room_id, ()))
        encoded = EncodedFrame(frame["type"], encode(frame))
        written = 0
        for listener in listeners:
            if listener.user_id != skip_user:
                listener.deliver(encoded)
                written += 1
        if written:
            metrics.frames_sent(frame["type"], written)

    def deactivated(self, user_id: int) -> None:
        for listener in list(self.by_user.get(user_id, ())):
            listener.deactivated()

    def session_ended(self, user_id: int, *, session: str | None, family: str | None) -> None:
        for listener in list(self.by_user.get(user_id, ())):
            listener.session_ended(session=session, family=family)

    async def stop(self) -> None:
        """Cancel the pump's tasks and wait for them (tests end their event loop after this)."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def concerned(self, event: Event) -> list[Listener]:
        """Return the sockets `event` may concern: its room's, its user's, and those not yet settled."""
        targets = set(self.unsettled)
        targets.update(self.by_room.get(event.room_id, ()))
        if event.user_id is not None:
            targets.update(self.by_user.get(event.user_id, ()))
        if event.type == Event.Type.ROOM_CREATED:
            for member in event.payload.get("room", {}).get("members") or ():
                targets.update(self.by_user.get(member["id"], ()))
        return list(targets)

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
        if self._running_in(loop):
            return
        if self.cursor is None:
            newest = await run_db(events.newest_event_id)
            if self.cursor is None:
                self.cursor = newest
        if self._running_in(loop):
            return  # another socket's first connect started it while this one read
        self._loop = loop
        self._wake = asyncio.Event()
        self.relay_channel = Relay(self)
        # A context of their own: the pump serves every socket, so its log lines
        # must not carry the request id of the connection that happened to start it.
        self._tasks = [
            loop.create_task(self._run(), name="event-pump", context=contextvars.Context()),
            loop.create_task(self.relay_channel.run(), name="event-relay", context=contextvars.Context()),
            loop.create_task(self.relay_channel.heartbeat(), name="presence-heartbeat", context=contextvars.Context()),
        ]

    def _running_in(self, loop: asyncio.AbstractEventLoop) -> bool:
        return bool(self._tasks) and not self._tasks[0].done() and self._loop is loop

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_INTERVAL)
            rung = self._wake.is_set()  # unset: the poll interval ran out with no doorbell
            self._wake.clear()
            if not self.listeners:
                # Nobody to deliver to: skip the read, but keep the cursor current
                # so a later socket is not flooded with old events. Only move it if
                # still nobody listens: a socket that registered meanwhile may hold
                # a starting point below the newest id.
                newest = await self._safe(events.newest_event_id, self.cursor)
                if not self.listeners:
                    self.cursor = newest
                continue
            before = self.cursor or 0
            await self.pump_once()
            if not rung and (self.cursor or 0) > before:
                # Delivered late: their doorbells were lost (Redis away, an expired group) or slow.
                metrics.events_found_by_poll(await self._safe(events.events_between, 0, before, self.cursor))

    async def pump_once(self) -> None:
        """Read and deliver every committed event past the cursor."""
        while True:
            cursor = self.cursor or 0
            batch = await self._safe(events.events_after, [], cursor)
            if not batch:
                return
            for event in batch:
                delivery = Delivery(event)
                for listener in self.concerned(event):
                    listener.offer(event, delivery)
                self.cursor = event.id
                delivery.flush_metrics()
            if len(batch) < events.FETCH_BATCH:
                return

    async def _safe(self, function: Any, fallback: Any, *args: Any) -> Any:
        try:
            return await run_db(function, *args)
        except Exception:
            # The database is away: keep the cursor, try again at the next tick.
            logger.warning("event pump: database read failed", exc_info=True)
            return fallback


def _discard(index: dict[int, set[Listener]], key: int, listener: Listener) -> None:
    members = index.get(key)
    if members is not None:
        members.discard(listener)
        if not members:
            del index[key]


pump = EventPump()


class Doorbell:
    """Rings the other processes' pumps through the channel layer, without making a commit wait.

    The on-commit hook runs on a database thread. Sending from there meant
    waiting for the event loop (busy writing frames) to run the send, and
    the thread's next action waited behind it. Instead the hook hands the
    ring to the loop and returns. Rings coalesce: at most one send is in
    flight, and rings that arrive meanwhile make one more after it. That is
    enough, because a doorbell only says "read the log": the send that
    follows a commit makes every pump read past that commit.
    """

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._sending = False
        self._again = False
        self._newest = 0

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Send doorbells from `loop`: the process's event loop (the ASGI application calls this)."""
        self.loop = loop

    def ring(self, event_id: int) -> None:
        """Ask the other processes to read the log; safe to call from any thread."""
        loop = self.loop
        if loop is None or not loop.is_running():
            # No event loop here (a management command, a test's thread): send and wait.
            self._send_blocking(event_id)
            return
        with contextlib.suppress(RuntimeError):  # the loop is shutting down
            loop.call_soon_threadsafe(self._request, event_id)

    def _request(self, event_id: int) -> None:
        self._newest = max(self._newest, event_id)
        if self._sending:
            self._again = True
            return
        self._sending = True
        # The loop's own context: the doorbell's log lines belong to no request.
        self.loop.create_task(self._send(), context=contextvars.Context())  # type: ignore[union-attr]

    async def _send(self) -> None:
        try:
            while True:
                self._again = False
                await self._publish(self._newest)
                if not self._again:
                    return
        finally:
            self._sending = False

    @staticmethod
    def _send_blocking(event_id: int) -> None:
        async_to_sync(Doorbell._publish)(event_id)

    @staticmethod
    async def _publish(event_id: int) -> None:
        layer = get_channel_layer()
        if layer is None or is_in_memory(layer):
            return
        try:
            await layer.group_send(DOORBELL_GROUP, {"type": "events.doorbell", "id": event_id, "from": PROCESS_TOKEN})
        except Exception:
            metrics.channel_layer_error("doorbell_send")
            # The event is committed; other processes pick it up at their next poll.
            logger.warning("doorbell for event %s not sent", event_id, exc_info=True)


doorbell = Doorbell()


def _ring_everyone(event: Event) -> None:
    """On commit: wake this process's pump at once, and the other processes' through the channel layer."""
    pump.ring()
    doorbell.ring(event.id)


def install() -> None:
    if getattr(settings, "REALTIME_DOORBELL", True):
        publish.subscribe(_ring_everyone)
