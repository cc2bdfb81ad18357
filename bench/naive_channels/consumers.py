"""The consumer of the naive reference: the Channels tutorial's chat, speaking our frames.

One AsyncWebsocketConsumer per socket. It joins one channel-layer group per
room, and every `message.send` becomes one `group_send` to the room's group;
each member's consumer then encodes the message and writes it to its socket.
That is the design docs/performance.md measures ours against (its cost is
a consumer dispatch and a JSON encoding per member per message); nothing is
stored.

It speaks just enough of docs/websocket.md for bench/loadtest.py, as
bench/ceiling_server.py does: the token (`Authorization: Bearer <user
id>:<room id>,<room id>…`) names the user and its rooms and is trusted;
`hello`, `message.send` in, `message.new` out, `resume.done`,
`resync.required`, `pong`, `error`. Event ids come from a counter in the
process and the last NAIVE_KEEP messages stay in memory, so
`?last_event_id=N` replays what a socket missed: right for the one process
the load test runs, as in the ceiling, and not a design for more.
"""

from __future__ import annotations

import collections
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings


class EventLog:
    """Event ids in the order messages were posted in this process, and the last `keep` messages."""

    def __init__(self, keep: int) -> None:
        self.entries: collections.deque[tuple[int, int, dict[str, Any]]] = collections.deque(maxlen=keep)
        self.last_id = 0

    def append(self, room: int, frame: dict[str, Any]) -> int:
        self.last_id += 1
        frame["event_id"] = frame["message"]["id"] = self.last_id
        self.entries.append((self.last_id, room, frame))
        return self.last_id

    def after(self, cursor: int, rooms: set[int]) -> list[dict[str, Any]] | None:
        """Return the frames after `cursor` in `rooms`, or None when the log no longer reaches back that far."""
        if self.entries and cursor < self.entries[0][0] - 1:
            return None
        return [frame for event_id, room, frame in self.entries if event_id > cursor and room in rooms]


LOG = EventLog(getattr(settings, "KEEP", 200_000))


def group_name(room: int) -> str:
    return f"room.{room}"


class ChatConsumer(AsyncWebsocketConsumer):
    user_id = 0
    rooms: frozenset[int] = frozenset()
    # Live frames at or below this id were already sent in the replay.
    replayed_up_to = 0

    async def connect(self) -> None:
        headers = dict(self.scope["headers"])
        token = headers.get(b"authorization", b"").decode("latin-1").removeprefix("Bearer ")
        user_text, _, rooms_text = token.partition(":")
        try:
            self.user_id = int(user_text)
            self.rooms = frozenset(int(room) for room in rooms_text.split(",") if room)
            cursor_values = parse_qs(self.scope["query_string"].decode("latin-1")).get("last_event_id")
            cursor = int(cursor_values[0]) if cursor_values else None
        except ValueError:
            await self.close(code=1008)
            return
        for room in self.rooms:
            await self.channel_layer.group_add(group_name(room), self.channel_name)
        await self.accept()
        # Joined first, then read the log: a message posted meanwhile comes in the
        # replay, live, or both (the live copy is skipped), never in neither.
        newest = LOG.last_id
        user = {"id": self.user_id, "username": f"u{self.user_id}", "display_name": f"u{self.user_id}"}
        await self.send(text_data=json.dumps({"type": "hello", "user": user, "last_event_id": newest}))
        if cursor is None:
            return
        missed = LOG.after(cursor, set(self.rooms))
        if missed is None:
            await self.send(text_data='{"type": "resync.required"}')
            return
        for frame in missed:
            await self.send(text_data=json.dumps(frame))
        self.replayed_up_to = newest
        await self.send(text_data=json.dumps({"type": "resume.done", "last_event_id": newest}))

    async def disconnect(self, code: int) -> None:
        for room in self.rooms:
            await self.channel_layer.group_discard(group_name(room), self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            frame = json.loads(text_data or "")
            kind = frame["type"]
        except (ValueError, TypeError, KeyError):
            await self.error("bad_frame")
            return
        if kind == "ping":
            await self.send(text_data='{"type": "pong"}')
        elif kind == "message.send":
            await self.post(frame)
        else:
            await self.error("unknown_type")

    async def post(self, frame: dict[str, Any]) -> None:
        room, body, client_id = frame.get("room"), frame.get("body"), frame.get("client_id")
        if not isinstance(body, str) or not isinstance(client_id, str) or not body:
            await self.error("bad_frame", client_id)
            return
        if not isinstance(room, int) or room not in self.rooms:
            await self.error("not_member", client_id)
            return
        message = {
            "id": 0,
            "room": room,
            "author": {"id": self.user_id, "username": f"u{self.user_id}", "display_name": f"u{self.user_id}"},
            "body": body,
            "client_id": client_id,
            "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        new = {"type": "message.new", "event_id": 0, "room": room, "message": message}
        LOG.append(room, new)
        await self.channel_layer.group_send(group_name(room), {"type": "chat.message", "frame": new})

    async def chat_message(self, event: dict[str, Any]) -> None:
        frame = event["frame"]
        if frame["event_id"] <= self.replayed_up_to:
            return
        await self.send(text_data=json.dumps(frame))

    async def error(self, code: str, client_id: Any = None) -> None:
        await self.send(text_data=json.dumps({"type": "error", "code": code, "client_id": client_id}))
