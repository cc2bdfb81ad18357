"""The `/ws/` consumer: one socket per client, carrying every room of its user.

Persistent events come from the per-process `delivery.pump` in event-id
order; typing and presence go through channel-layer groups. What a client
sends is parsed and checked here, then handed to the same service
functions the REST API calls.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
import uuid
from typing import Any
from urllib.parse import parse_qs

import structlog
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from accounts.payloads import user_payload
from core import dbretry, metrics, ratelimit
from core.api import ID_MAX, whole_number
from core.db import run_db
from core.dbretry import is_database_unavailable
from core.errors import NotFound, ServiceError
from messaging import services
from messaging.services import CLIENT_ID_MAX
from realtime import delivery, presence, relay
from realtime.daphne import socket_writer
from rooms import events, selectors
from rooms.events import Event
from rooms.models import Room

logger = logging.getLogger(__name__)
log = structlog.get_logger(__name__)

MAX_FRAME_BYTES = 64 * 1024
# Frames a client may send: RATE per second on average, BURST at once.
RATE_PER_SECOND = 10.0
RATE_BURST = 20.0
# Refused frames within FLOOD_WINDOW seconds that end the connection.
FLOOD_STRIKES = 40
FLOOD_WINDOW = 10.0
# Frames waiting to be written to a slow client before it is dropped (4009)
# to resume later, instead of letting server memory grow: settings.WS_SEND_QUEUE_MAX.
# Events arriving while a resume replays from the database.
HELD_MAX = 10_000

CLOSE_TOO_BIG = 1009
CLOSE_POLICY = 1008
CLOSE_TOKEN_EXPIRED = 4001
CLOSE_DEACTIVATED = 4003
CLOSE_FLOODING = 4008
CLOSE_DROPPED = 4009

# Frames that are the same for every recipient, so encoded once per event.
SHARED_FRAME_TYPES = {"message.new", "message.updated", "member.joined", "member.left", "user.updated"}


# Fire-and-forget tasks that outlive a handler; kept here so they are not
# garbage-collected half-way.
_background: set[asyncio.Task[Any]] = set()


def _spawn(coroutine: Any) -> asyncio.Task[Any]:
    task = asyncio.get_running_loop().create_task(coroutine)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


class FrameError(Exception):
    """A client frame is refused; becomes an `error` frame."""

    def __init__(self, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.extra = extra


def _int_field(frame: dict[str, Any], name: str, *, required: bool = True) -> int | None:
    value = frame.get(name)
    if value is None:
        if required:
            raise FrameError("bad_request", f"'{name}' is required.")
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= ID_MAX:
        raise FrameError("bad_request", f"'{name}' must be a positive integer id.")
    return value


def _id_field(frame: dict[str, Any], name: str) -> int:
    """Return a required positive integer id field, or refuse the frame."""
    value = _int_field(frame, name)
    assert value is not None  # _int_field raises for a missing required field
    return value


def _str_field(frame: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = frame.get(name)
    if value is None:
        if required:
            raise FrameError("bad_request", f"'{name}' is required.")
        return None
    if not isinstance(value, str):
        raise FrameError("bad_request", f"'{name}' must be a string.")
    return value


def _service_error(exc: ServiceError) -> FrameError:
    detail = exc.detail
    if isinstance(detail, dict):
        text = " ".join(f"{field}: {message}" for field, message in detail.items())
        return FrameError(exc.code if exc.code != "conflict" else "invalid", text, fields=detail)
    return FrameError(exc.code if exc.code != "conflict" else "invalid", detail)


class ChatConsumer(AsyncWebsocketConsumer):
    """A user's socket: live events in id order, resume from a cursor, and client frames."""

    # No channel of its own: the process's relay (realtime.relay) receives for
    # every socket, so a socket costs no Redis subscription and no receiving task.
    channel_layer_alias = "chat.no-channel-per-socket"

    user_id: int
    roles: dict[int, str]
    since: dict[int, int]
    user_changes: dict[int, str]
    # Set once the socket is closing: no frame is answered and no event written after that.
    closing = False

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels closes stale database connections before every handler, a
        # thread hop per message. Handlers here reach the database
        # only through core.db.run_db, which does that itself.
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # --- Connection ------------------------------------------------------------------

    async def connect(self) -> None:
        user = self.scope.get("user")
        # Only signed-in, active users get a socket; refusing before accept is an HTTP 403.
        if user is None or not user.is_authenticated or not user.is_active:
            log.info("ws.refused", reason="unauthenticated")
            metrics.handshake_refused("unauthenticated")
            await self.close()
            return
        self.user = user
        self.user_id = user.pk
        structlog.contextvars.bind_contextvars(user_id=user.pk)
        self.socket_id = uuid.uuid4().hex
        # The sign-in this socket belongs to, to close it when that ends (session_ended).
        self.token_family: str | None = self.scope.get("token_family")
        self.session_key: str | None = None
        if "token_expires_at" not in self.scope and self.scope.get("session") is not None:
            self.session_key = self.scope["session"].session_key
        self.roles, self.since = {}, {}
        self.user_changes = {}
        self.live = False
        self.closing = False
        self.held: list[Event] = []
        self.floor = 0  # the highest event id this socket has passed
        # Frames waiting for a slow socket, in order; written by
        # a task that exists only while there is a backlog. A socket that keeps up
        # gets its frames written straight from the pump (`_deliver`).
        self.outbox: collections.deque[delivery.EncodedFrame] = collections.deque()
        self.outbox_max = settings.WS_SEND_QUEUE_MAX
        self.flusher: asyncio.Task[None] | None = None
        self.writer = socket_writer(self.scope)
        self.tokens = RATE_BURST
        self.tokens_at = time.monotonic()
        self.strikes: list[float] = []
        self.timers: list[asyncio.TimerHandle] = []
        self.tasks: list[asyncio.Task[Any]] = []

        if not await self._within_socket_cap():
            return

        resume_from, bad_cursor = self._requested_cursor()

        # Register before reading the newest id: every event above it will be offered.
        await delivery.pump.register(self)
        start = await run_db(delivery.socket_start, self.user_id)
        self.roles, self.since = start.roles, start.since
        await self.accept()
        self.opened_at = time.monotonic()
        metrics.socket_opened()
        log.info("ws.connect", resume_from=resume_from)
        await self._send_now({"type": "hello", "user": user_payload(user), "last_event_id": start.told})

        if bad_cursor:
            await self._send_now(
                {"type": "error", "code": "bad_request", "detail": "last_event_id must be a non-negative integer."}
            )
            await self._close(CLOSE_POLICY)
            return
        if resume_from is not None:
            await self._resume(resume_from, start)
        self.floor = max(self.floor, start.newest)
        self._go_live()
        self._schedule_token_expiry()
        await self._announce_presence_online()

    async def _within_socket_cap(self) -> bool:
        """Count this socket among the user's on every process; refuse it (4008) past WS_MAX_SOCKETS_PER_USER.

        Presence keeps each user's open sockets (realtime.presence): counting
        is recording this one there, a round trip per handshake. The newest socket
        is the one refused: closing an older one would let a stolen session
        push the owner's tabs off, and a client that opened too many learns
        it at once. Accepted first, so the client can read why.
        """
        try:
            open_sockets = await presence.sockets_open(self.user_id, self.socket_id)
        except Exception:
            logger.warning("presence: could not count the user's sockets; socket allowed", exc_info=True)
            return True
        limit = settings.WS_MAX_SOCKETS_PER_USER
        if open_sockets <= limit:
            return True
        self.closing = True
        try:
            await presence.socket_closed(self.user_id, self.socket_id)
        except Exception:
            logger.warning("presence: could not forget a refused socket", exc_info=True)
        log.info("ws.refused", reason="too_many_sockets", open_sockets=open_sockets)
        metrics.handshake_refused("too_many_sockets")
        await self.accept()
        detail = f"This account has {limit} sockets open already; close one first."
        await self._send_now({"type": "error", "code": "too_many_sockets", "detail": detail})
        await self.close(CLOSE_FLOODING)
        return False

    def _requested_cursor(self) -> tuple[int | None, bool]:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        values = query.get("last_event_id")
        if not values:
            return None, False
        cursor = whole_number(values[0])
        if cursor is None or cursor < 0 or cursor > ID_MAX:
            return None, True
        return cursor, False

    async def _resume(self, cursor: int, start: delivery.SocketStart) -> None:
        """Replay (cursor, start.newest] from the database, then say resume.done."""
        newest = start.newest
        # Above what this user may be told, a cursor is not one this server gave
        # them (another database, or a guess at the global newest id).
        if cursor > start.told or (
            # Below the pruned-through mark: resync only if a pruned event was theirs to see.
            cursor < start.pruned and await run_db(_pruned_events_missed, self.user_id, cursor)
        ):
            # Events the client missed no longer exist (or it comes from another
            # database): it must reload over REST.
            await self._send_now({"type": "resync.required"})
            metrics.resumed("resync")
            return
        # Read the whole replay before sending any of it: past RESUME_MAX_EVENTS
        # the client reloads over REST instead, and a reconnect storm of old
        # cursors cannot make the server replay the log again and again.
        # From the cursor's own event on: the client has it, and its repeats
        # (another room's copy of a user.updated) must not be sent again.
        pending: list[Event] = []
        position = max(cursor - 1, 0)
        while position < newest:
            batch = await run_db(_replay_batch, self.user, position, newest)
            if not batch:
                break
            for event in batch:
                if event.id <= cursor:
                    delivery.event_already_sent(event, self)
                else:
                    pending.append(event)
            if len(pending) > settings.RESUME_MAX_EVENTS:
                await self._send_now({"type": "resync.required"})
                metrics.resumed("resync")
                return
            position = batch[-1].id
        for event in pending:
            frame = delivery.event_frame(event, self, replaying=True)
            if frame is not None:
                await self._send_now(frame)
                metrics.frame_replayed()
        self.floor = newest
        await self._send_now({"type": "resume.done", "last_event_id": start.told})
        metrics.resumed("replayed")

    def _go_live(self) -> None:
        """Release the events held during the hand-over, dropping those already covered."""
        held, self.held = self.held, []
        self.live = True
        delivery.pump.settle(self)
        for event in held:
            self.offer(event, delivery.Delivery(event))

    async def disconnect(self, code: int) -> None:
        if not hasattr(self, "socket_id"):
            return
        if hasattr(self, "opened_at"):
            metrics.socket_closed()
            log.info("ws.disconnect", code=code, duration_s=round(time.monotonic() - self.opened_at, 1))
        self.closing = True
        delivery.pump.unregister(self)
        if self.flusher is not None:
            self.flusher.cancel()
        for timer in self.timers:
            timer.cancel()
        for task in self.tasks:
            task.cancel()
        try:
            await presence.socket_closed(self.user_id, self.socket_id)
        except Exception:
            logger.warning("presence: could not record a closed socket", exc_info=True)
        else:
            _spawn(self._announce_offline_later())

    # --- Delivery from the pump ---------------------------------------------------------

    def offer(self, event: Event, passing: delivery.Delivery) -> None:
        """Take an event from the pump (in id order); write or queue its frame for this socket, if any."""
        if self.closing:
            return
        if not self.live:
            self.held.append(event)
            if len(self.held) > HELD_MAX:
                self._drop()
            return
        if event.id <= self.floor:
            return
        self.floor = event.id
        rooms_before = set(self.roles)
        frame = delivery.event_frame(event, self)
        if frame is None:
            return
        if rooms_before != self.roles.keys():
            self._rooms_changed(rooms_before)
        if frame["type"] in SHARED_FRAME_TYPES:
            encoded = passing.shared(frame)
        else:
            encoded = delivery.EncodedFrame(frame["type"], delivery.encode(frame))
        self.deliver(encoded)
        passing.count(encoded.frame_type)

    def _rooms_changed(self, rooms_before: set[int]) -> None:
        for room_id in self.roles.keys() - rooms_before:
            delivery.pump.room_joined(self, room_id)
        for room_id in rooms_before - self.roles.keys():
            delivery.pump.room_left(self, room_id)

    def deliver(self, encoded: delivery.EncodedFrame) -> None:
        """Write a frame now if the socket keeps up, else queue it behind the backlog."""
        if self.closing:
            return
        writer = self.writer
        if writer is not None and not self.outbox and writer.ready():
            writer.write(encoded.prepared_for(writer.factory))
        else:
            self._enqueue(encoded)

    def _enqueue(self, item: delivery.EncodedFrame) -> None:
        if len(self.outbox) >= self.outbox_max:
            self._drop()
            return
        self.outbox.append(item)
        if self.flusher is None:
            self.flusher = asyncio.get_running_loop().create_task(self._flush())

    def _drop(self) -> None:
        """This socket cannot keep up: close it so the client resumes from its cursor."""
        if not self.closing:
            self.closing = True
            logger.info("socket of user %s dropped: too far behind", self.user_id)
            metrics.socket_dropped()
            _spawn(self.close(CLOSE_DROPPED))

    async def _flush(self) -> None:
        """Write the backlog in order, waiting while the socket's buffer is full; end when it is empty."""
        try:
            while self.outbox and not self.closing:
                item = self.outbox[0]
                if self.writer is not None:
                    await self.writer.drained()
                    if self.writer.ready():
                        self.writer.write(item.prepared_for(self.writer.factory))
                    else:
                        await self.send(text_data=item.text)
                else:
                    await self.send(text_data=item.text)
                self.outbox.popleft()
        finally:
            self.flusher = None

    async def _send_now(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=delivery.encode(frame))
        metrics.frame_sent(frame["type"])

    # --- Frames from the client ----------------------------------------------------------

    async def _close(self, code: int) -> None:
        self.closing = True
        await self.close(code)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closing:
            # Frames the client sent before it saw the close (a flood's tail): the server has said goodbye.
            return
        # surrogatepass: a lone surrogate cannot come through Daphne (it checks UTF-8), but must not raise here.
        size = len(text_data.encode(errors="surrogatepass")) if text_data is not None else len(bytes_data or b"")
        if size > MAX_FRAME_BYTES:
            log.info("ws.frame_refused", code="too_big", size=size)
            metrics.frame_refused("too_big")
            await self._close(CLOSE_TOO_BIG)
            return
        client_id = None
        try:
            frame, malformed = _parse_frame(text_data)
            metrics.frame_received(_frame_type(frame))
            if frame is not None:
                raw_client_id = frame.get("client_id")
                client_id = (
                    raw_client_id if isinstance(raw_client_id, str) and len(raw_client_id) <= CLIENT_ID_MAX else None
                )
            # Every frame counts, well-formed or not; a refused send still names its client_id.
            self._take_token()
            if malformed is not None:
                raise malformed
            assert frame is not None
            kind = frame.get("type")
            if not isinstance(kind, str):
                raise FrameError("bad_request", "'type' is required and must be a string.")
            handler = FRAME_HANDLERS.get(kind)
            if handler is None:
                raise FrameError("unknown_type", f"Unknown frame type {kind[:40]!r}.")
            await handler(self, frame)
        except FrameError as error:
            await self._refuse(error, client_id)
        except Exception as exc:
            logger.exception("frame from user %s failed", self.user_id)
            code = "unavailable" if is_database_unavailable(exc) else "server_error"  # unavailable: send again later
            await self._refuse(FrameError(code, "The server could not handle this frame."), client_id)

    async def _refuse(self, error: FrameError, client_id: str | None) -> None:
        log.info("ws.frame_refused", code=error.code)
        metrics.frame_refused(error.code)
        reply: dict[str, Any] = {"type": "error", "code": error.code, "detail": error.detail, **error.extra}
        if client_id is not None:
            reply["client_id"] = client_id
        await self._send_now(reply)
        if error.code == "rate_limited":
            now = time.monotonic()
            self.strikes = [moment for moment in self.strikes if now - moment < FLOOD_WINDOW] + [now]
            if len(self.strikes) >= FLOOD_STRIKES:
                await self._close(CLOSE_FLOODING)

    def _take_token(self) -> None:
        now = time.monotonic()
        self.tokens = min(RATE_BURST, self.tokens + (now - self.tokens_at) * RATE_PER_SECOND)
        self.tokens_at = now
        if self.tokens < 1:
            retry_after = round((1 - self.tokens) / RATE_PER_SECOND, 2)
            raise FrameError("rate_limited", "Too many frames; slow down.", retry_after=retry_after)
        self.tokens -= 1

    async def frame_message_send(self, frame: dict[str, Any]) -> None:
        room_id = _id_field(frame, "room")
        # Files uploaded over REST first (files app); with them the body may be left out or empty.
        attachments = frame.get("attachments")
        body = _str_field(frame, "body", required=attachments is None)
        client_id = _str_field(frame, "client_id")
        parent = _int_field(frame, "parent", required=False)
        broadcast = frame.get("broadcast", False)
        if broadcast is not None and not isinstance(broadcast, bool):
            raise FrameError("bad_request", "'broadcast' must be true or false.")
        await self._spend_send_budget()
        try:
            # The very function the REST POST calls: same checks, same idempotency.
            await run_db(
                _post,
                room=room_id,
                author=self.user,
                body=body,
                client_id=client_id,
                parent=parent,
                attachments=attachments,
                broadcast=bool(broadcast),
            )
        except ServiceError as exc:
            raise _service_error(exc) from None
        # No echo here: the sender's sockets get message.new like every member's.

    async def frame_read(self, frame: dict[str, Any]) -> None:
        room_id = _id_field(frame, "room")
        message_id = _id_field(frame, "message_id")
        try:
            await run_db(_read_mark, self.user, room_id, message_id)
        except ServiceError as exc:
            raise _service_error(exc) from None

    async def frame_typing(self, frame: dict[str, Any]) -> None:
        room_id = _int_field(frame, "room")
        assert room_id is not None
        # Only the room's members hear it; the group is named from the membership, not the frame.
        if room_id not in self.roles:
            raise FrameError("not_found", "Room not found.")
        await self._spend_send_budget()
        await relay.send_to_room(room_id, {"type": "typing.relay", "user": user_payload(self.user)})

    async def _spend_send_budget(self) -> None:
        """Count a message or typing notice against the user's budget, shared with REST and their other sockets."""
        wait = await ratelimit.asend_budget_spend(self.user_id)
        if wait is not None:
            raise FrameError("rate_limited", "Too many messages from this account; slow down.", retry_after=wait)

    async def frame_ping(self, frame: dict[str, Any]) -> None:
        await self._send_now({"type": "pong"})

    # --- From the process's relay (realtime.relay) ---------------------------------------------

    def deactivated(self) -> None:
        """The account was deactivated: close at once (4003)."""
        if not self.closing:
            self.closing = True
            _spawn(self.close(CLOSE_DEACTIVATED))

    def session_ended(self, *, session: str | None, family: str | None) -> None:
        """A sign-in of the user's ended: close (4001) if this socket was opened with it.

        `session`: a browser session that logged out; `family`: an API sign-in
        that was signed out or revoked; neither: every sign-in (sign out
        everywhere, a new password).
        """
        if session is not None:
            ended = session == self.session_key
        elif family is not None:
            ended = family == self.token_family
        else:
            ended = True
        if ended and not self.closing:
            self.closing = True
            _spawn(self.close(CLOSE_TOKEN_EXPIRED))

    # --- Token expiry and presence -------------------------------------------------------------

    def _schedule_token_expiry(self) -> None:
        expires_at = self.scope.get("token_expires_at")
        if expires_at is None:
            return
        loop = asyncio.get_running_loop()

        def expire() -> None:
            self.closing = True
            _spawn(self.close(CLOSE_TOKEN_EXPIRED))

        self.timers.append(loop.call_later(max(0.0, expires_at - time.time()), expire))

    async def _announce_presence_online(self) -> None:
        try:
            first = await presence.socket_opened(self.user_id, self.socket_id)
        except Exception:
            logger.warning("presence: could not record an open socket", exc_info=True)
            return
        # The process's relay renews every socket's lease (realtime.relay.Relay.heartbeat).
        if first:
            try:
                await self._broadcast_presence("online")
            except Exception:
                logger.warning("presence: could not announce online", exc_info=True)

    async def _announce_offline_later(self) -> None:
        await asyncio.sleep(presence.OFFLINE_GRACE_SECONDS)
        try:
            if not await presence.is_online(self.user_id):
                await self._broadcast_presence("offline")
        except Exception:
            logger.warning("presence: could not announce offline", exc_info=True)

    async def _broadcast_presence(self, status: str) -> None:
        # Only through channels and DMs written in (rooms.selectors.presence_rooms), as GET presence/ answers.
        room_ids = await run_db(selectors.presence_room_ids, self.user_id)
        # One copy per room reaches a process, but each socket gets one frame:
        # every copy names all the rooms and the change, and a process hands on
        # only the first copy it receives (realtime.relay).
        message = {
            "type": "presence.relay",
            "user": self.user_id,
            "status": status,
            "rooms": room_ids,
            "change": uuid.uuid4().hex,
        }
        for room_id in room_ids:
            await relay.send_to_room(room_id, message)


def _parse_frame(text_data: str | None) -> tuple[dict[str, Any] | None, FrameError | None]:
    """Return the frame as a JSON object, or the error that refuses it."""
    if text_data is None:
        return None, FrameError("bad_request", "Frames must be JSON text.")
    try:
        frame = json.loads(text_data)
    except (ValueError, RecursionError):
        return None, FrameError("bad_request", "Frames must be valid JSON.")
    if not isinstance(frame, dict):
        return None, FrameError("bad_request", "A frame must be a JSON object.")
    return frame, None


def _frame_type(frame: dict[str, Any] | None) -> str:
    """Return a received frame's type for metrics: a known type, or "other"."""
    kind = frame.get("type") if frame is not None else None
    return kind if isinstance(kind, str) and kind in FRAME_HANDLERS else "other"


def _pruned_events_missed(user_id: int, after: int) -> bool:
    return events.pruned_events_missed(user_id=user_id, after=after)


def _replay_batch(user: Any, after: int, through: int) -> list[Event]:
    return events.events_for_replay_batch(user=user, after=after, through=through)


@dbretry.idempotent
def _post(
    *,
    room: int,
    author: Any,
    body: str | None,
    client_id: str | None,
    parent: int | None,
    attachments: object = None,
    broadcast: bool = False,
) -> None:
    """Post for a socket. Safe to run again if a lost connection hides whether it committed:
    a socket's send always names a client_id, and a second post with it returns the first."""
    services.message_post(
        room=room,
        author=author,
        body=body,
        client_id=client_id,
        parent=parent,
        attachments=attachments,
        broadcast=broadcast,
    )


@dbretry.idempotent  # read markers only move forward
def _read_mark(user: Any, room_id: int, message_id: int) -> None:
    room = Room.objects.filter(pk=room_id, deleted_at__isnull=True).first()
    if room is None:
        raise NotFound("Room not found.")
    services.read_mark(user=user, room=room, message_id=message_id)


FRAME_HANDLERS = {
    "message.send": ChatConsumer.frame_message_send,
    "read": ChatConsumer.frame_read,
    "typing": ChatConsumer.frame_typing,
    "ping": ChatConsumer.frame_ping,
}
