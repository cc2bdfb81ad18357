"""A command-line chat client: REST for accounts and rooms, the `/ws/` socket for everything live.

    python -m client --server http://127.0.0.1:8000 --username alice
    python -m client --username bob --register --email bob@example.com

The password comes from `--password`, the `CHAT_PASSWORD` environment
variable, or a prompt. Lines typed on stdin are sent to the current room;
lines starting with `/` are commands (`/help` lists them). `/upload PATH`
shares a file; a message's files are printed under it with their name, size
and address.

The client keeps the delivery promise of docs/websocket.md from its side: it
keeps the highest `event_id` it has seen, reconnects with
`?last_event_id=` after any disconnect (backing off, up to `--max-retries`
failed attempts in a row), drops frames it has already seen, and resends a
message until the server confirms it (`message.new` with its `client_id`),
which is safe because the server never posts one client_id twice. The
access token is refreshed before it expires; refresh tokens rotate.

Only the standard library and `websockets` are used, so the client runs
anywhere the project's requirements are installed, without Django.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import getpass
import json
import mimetypes
import os
import random
import re
import sys
import threading
import time
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

HISTORY_DEFAULT = 20
HISTORY_MAX = 200
# Seconds between reconnection attempts: doubling from BACKOFF_BASE up to BACKOFF_CAP.
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
# The server allows 10 frames a second with bursts of 20; stay just inside.
SEND_RATE = 9.0
SEND_BURST = 15.0
# How long /quit waits for unconfirmed messages before leaving anyway.
QUIT_FLUSH_SECONDS = 5.0
# Messages remembered to describe later edits and reactions.
MESSAGE_MEMORY = 2000
HTTP_TIMEOUT = 15.0
# An upload may take a while on a slow link; its bytes are read from disk in chunks of this size.
UPLOAD_TIMEOUT = 300.0
UPLOAD_CHUNK = 64 * 1024

CLOSE_BAD_CURSOR = 1008
CLOSE_TOKEN_EXPIRED = 4001
CLOSE_DEACTIVATED = 4003
CLOSE_FLOODING = 4008
CLOSE_DROPPED = 4009

HELP = """\
Commands:
  /rooms                  list your rooms
  /join <id or name>      join a public channel and switch to it
  /room <id or name>      switch the current room (#channel, @user for a DM, or an id)
  /create <name>          create a public channel and switch to it
  /dm <username>          open a direct conversation and switch to it
  /history [n]            show the last n messages of the current room (default 20)
  /upload <path>          share a file in the current room
  /reply <id> <text>      reply in the thread of message #id (replies show as ↳ under their root)
  /thread <id>            show the thread of message #id: its first message and every reply
  /notify                 show your notification settings and the current room's
  /notify all|mentions|none   what of the current room notifies you while away
  /notify mute <minutes>|unmute   mute the current room for a while, or unmute it
  /notify email on|off    emails of missed DMs and mentions (/notify delay <minutes> sets when)
  /notify push on|off     Web Push to your browsers
  /notify dnd <minutes>|off   do not disturb
  /notify tz <zone>       your time zone (e.g. Europe/Paris)
  /quit                   leave (also end of input)
Anything else is sent to the current room; start a line with // to send one beginning with /."""


# --- Parsing what the user types ---------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """A line from the user: a command with its argument, or text to send (`name == "say"`)."""

    name: str
    arg: str = ""


class UsageError(ValueError):
    """A command line that cannot be run as typed."""


COMMANDS = {"rooms", "join", "room", "create", "dm", "history", "upload", "reply", "thread", "notify", "quit", "help"}
NOTIFY_USAGE = (
    "Usage: /notify [all|mentions|none | mute <minutes> | unmute | email on|off | push on|off"
    " | delay <minutes> | dnd <minutes>|off | tz <zone>]"
)
NOTIFY_MINUTES_MAX = 7 * 24 * 60
NEEDS_ARGUMENT = {
    "join": "/join <id or name>",
    "room": "/room <id or name>",
    "create": "/create <name>",
    "upload": "/upload <path>",
    "reply": "/reply <id> <text>",
    "thread": "/thread <id>",
}


def parse_line(line: str) -> Command | None:
    """Return the command a typed line asks for, None for a blank line; raise UsageError if malformed."""
    text = line.rstrip("\r\n")
    if not text.strip():
        return None
    if text.startswith("//"):
        return Command("say", text[1:])
    if not text.startswith("/"):
        return Command("say", text)
    name, _, arg = text[1:].partition(" ")
    name, arg = name.lower(), arg.strip()
    if name not in COMMANDS:
        raise UsageError(f"Unknown command /{name}. Type /help for the list.")
    if name in NEEDS_ARGUMENT and not arg:
        raise UsageError(f"Usage: {NEEDS_ARGUMENT[name]}")
    if name == "dm":
        arg = arg.lstrip("@")
        if not arg or " " in arg:
            raise UsageError("Usage: /dm <username>")
    if name == "history":
        if not arg:
            arg = str(HISTORY_DEFAULT)
        if not _is_number(arg) or not 1 <= int(arg) <= HISTORY_MAX:
            raise UsageError(f"Usage: /history [n], n from 1 to {HISTORY_MAX}")
    if name == "reply":
        target, _, text = arg.partition(" ")
        if not _is_number(target.lstrip("#")) or not text.strip():
            raise UsageError("Usage: /reply <id> <text>")
        arg = f"{target.lstrip('#')} {text.strip()}"
    if name == "thread" and not _is_number(arg.lstrip("#")):
        raise UsageError("Usage: /thread <id>")
    if name == "notify":
        arg = _notify_argument(arg)
    if name in ("rooms", "quit", "help") and arg:
        raise UsageError(f"/{name} takes no argument.")
    return Command(name, arg)


def _notify_argument(arg: str) -> str:
    """Check a /notify argument; return it normalised (lower-cased words, single spaces)."""
    words = arg.split()
    if not words:
        return ""
    head, rest = words[0].lower(), words[1:]
    if head in ("all", "mentions", "none", "unmute") and not rest:
        return head
    if head in ("email", "push") and len(rest) == 1 and rest[0].lower() in ("on", "off"):
        return f"{head} {rest[0].lower()}"
    if head == "dnd" and len(rest) == 1 and rest[0].lower() == "off":
        return "dnd off"
    minutes = len(rest) == 1 and _is_number(rest[0]) and 1 <= int(rest[0]) <= NOTIFY_MINUTES_MAX
    if head in ("mute", "dnd", "delay") and minutes:
        return f"{head} {int(rest[0])}"
    if head == "tz" and len(rest) == 1:
        return f"tz {rest[0]}"
    raise UsageError(NOTIFY_USAGE)


def _is_number(text: str) -> bool:
    """Whether int() reads the text as a room id or count: ASCII digits only (isdigit() also takes "²")."""
    return text.isascii() and text.isdigit() and len(text) <= 19


def slugify(name: str) -> str:
    """Approximate Django's slugify (allow_unicode) to match a typed name against channel slugs."""
    value = unicodedata.normalize("NFKC", name).lower()
    value = re.sub(r"[^\w\s-]", "", value)
    return re.sub(r"[-\s]+", "-", value).strip("-_")


# --- What the client knows, and how it shows frames ---------------------------------------


@dataclass
class View:
    """The client's picture of the world: who it is, its rooms, names seen, recent messages."""

    me: dict[str, Any] = field(default_factory=dict)
    rooms: dict[int, dict[str, Any]] = field(default_factory=dict)
    users: dict[int, str] = field(default_factory=dict)
    messages: OrderedDict[int, dict[str, Any]] = field(default_factory=OrderedDict)
    presence: dict[int, Any] = field(default_factory=dict)
    # The server's address, to print files' paths as URLs to open or download.
    server: str = ""

    @property
    def my_id(self) -> int | None:
        return self.me.get("id")

    def learn_user(self, user: dict[str, Any] | None) -> None:
        if user and "id" in user and "username" in user:
            self.users[user["id"]] = user["username"]

    def learn_room(self, room: dict[str, Any]) -> None:
        self.rooms[room["id"]] = room
        for member in room.get("members") or []:
            self.learn_user(member)

    def remember_message(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """Store a message; return the version remembered before, if any."""
        previous = self.messages.pop(message["id"], None)
        self.messages[message["id"]] = message
        while len(self.messages) > MESSAGE_MEMORY:
            self.messages.popitem(last=False)
        self.learn_user(message.get("author"))
        return previous

    def user_name(self, user_id: int) -> str:
        return self.users.get(user_id, f"user {user_id}")

    def room_label(self, room_id: int) -> str:
        """Return `#slug` for a channel, `@alice,bob` for a DM (without the reader), `room N` if unknown."""
        room = self.rooms.get(room_id)
        if room is None:
            return f"room {room_id}"
        if room.get("kind") == "direct":
            others = [m["username"] for m in room.get("members") or [] if m.get("id") != self.my_id]
            return "@" + ",".join(others) if others else "@me"
        return "#" + (room.get("slug") or room.get("name") or str(room_id))

    def find_room(self, text: str) -> dict[str, Any] | None:
        """Find one of the user's rooms by id, `#slug`, name, or `@username` for a DM."""
        text = text.strip()
        if _is_number(text):
            return self.rooms.get(int(text))
        wanted = text.lower()
        for room in self.rooms.values():
            if self.room_label(room["id"]).lower() == wanted:
                return room
        bare = wanted.lstrip("#")
        for room in self.rooms.values():
            if room.get("kind") == "channel" and bare in {
                (room.get("slug") or "").lower(),
                (room.get("name") or "").lower(),
            }:
                return room
        if bare.startswith("@") or not text.startswith("#"):
            name = bare.lstrip("@")
            for room in self.rooms.values():
                if room.get("kind") == "direct" and self.room_label(room["id"]).lower() == "@" + name:
                    return room
        slug = slugify(bare)
        return next((r for r in self.rooms.values() if r.get("kind") == "channel" and r.get("slug") == slug), None)


def format_size(size: Any) -> str:
    """Return a size for people: "812 bytes", "1.4 MB" (powers of 1024, as the web page shows them)."""
    value = float(size or 0)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            break
        value /= 1024
    if unit == "bytes":
        return "1 byte" if value == 1 else f"{int(value)} bytes"
    return f"{value:.1f} {unit}" if value < 10 else f"{round(value)} {unit}"


def _attachment_lines(view: View, message: dict[str, Any]) -> list[str]:
    """One line per file of a message: name, size, type and the URL it downloads from."""
    lines = []
    for file in message.get("attachments") or []:
        url = str(file.get("url") or "")
        if url.startswith("/") and view.server:
            url = view.server.rstrip("/") + url
        kind = f", {file['content_type']}" if file.get("content_type") else ""
        lines.append(f"    file: {file.get('name', '?')} ({format_size(file.get('size'))}{kind}) {url}")
    return lines


def _in_minutes(minutes: int) -> str:
    """An ISO 8601 UTC timestamp `minutes` from now."""
    moment = datetime.now(UTC) + timedelta(minutes=minutes)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _room_setting_text(setting: dict[str, Any]) -> str:
    levels = {"all": "every message", "mentions": "mentions only", "none": "nothing"}
    text = f"notifies {levels.get(setting.get('level', ''), setting.get('level'))}"
    muted = setting.get("muted_until")
    if muted and datetime.fromisoformat(muted.replace("Z", "+00:00")) > datetime.now(UTC):
        text += f", muted until {muted}"
    return text


def _message_line(view: View, room_id: int, message: dict[str, Any]) -> str:
    """`[#room] alice: text  #12`, then a line per attached file; a thread reply is indented under its root.

    A reply reads `[#room]   ↳ bob: text  #13 (thread #12)`.
    """
    author = (message.get("author") or {}).get("username", "?")
    label = view.room_label(room_id)
    if message.get("parent"):
        line = f"[{label}]   ↳ {author}: {message.get('body', '')}  #{message['id']} (thread #{message['parent']})"
    else:
        line = f"[{label}] {author}: {message.get('body', '')}  #{message['id']}"
    return "\n".join([line, *_attachment_lines(view, message)])


def _thread_hint(view: View, room_id: int, message: dict[str, Any]) -> str | None:
    """Under a root in /history: how many replies it has, and how to read them."""
    count = message.get("reply_count") or 0
    if not count or message.get("parent"):
        return None
    noun = "reply" if count == 1 else "replies"
    return f"[{view.room_label(room_id)}]   ↳ {count} {noun} (/thread {message['id']})"


def _reactions_text(message: dict[str, Any]) -> str:
    reactions = message.get("reactions") or []
    if not reactions:
        return "no reactions"
    return " ".join(f"{r['emoji']} {r['count']}" for r in reactions)


def _field_errors(fields: dict[str, Any]) -> str:
    parts = []
    for name, value in fields.items():
        text = " ".join(value) if isinstance(value, list) else str(value)
        parts.append(text if name in ("detail", "non_field_errors") else f"{name}: {text}")
    return "; ".join(parts)


def format_frame(frame: dict[str, Any], view: View) -> str | None:
    """Return the line to print for a server frame (None to print nothing), updating `view`."""
    kind = frame.get("type")
    room: Any = frame.get("room")
    if kind == "hello":
        view.me = frame.get("user") or view.me
        view.learn_user(view.me)
        return f"* connected as {view.me.get('username')} (server at event {frame.get('last_event_id')})"
    if kind == "resume.done":
        return f"* caught up (event {frame.get('last_event_id')})"
    if kind == "resync.required":
        return "* missed events are no longer kept; reloading rooms"
    if kind == "pong":
        return "* pong"
    if kind == "message.new":
        message = frame["message"]
        view.remember_message(message)
        return _message_line(view, room, message)
    if kind == "message.updated":
        message = frame["message"]
        previous = view.remember_message(message)
        label = view.room_label(room)
        author = (message.get("author") or {}).get("username", "?")
        if message.get("deleted"):
            return f"[{label}] {author}'s message #{message['id']} was deleted"
        if (
            previous is not None
            and previous.get("body") == message.get("body")
            and previous.get("reactions") == message.get("reactions")
            and previous.get("attachments") != message.get("attachments")
        ):
            kept = {file.get("id") for file in message.get("attachments") or []}
            gone = [file.get("name", "?") for file in previous.get("attachments") or [] if file.get("id") not in kept]
            if gone:
                return f"[{label}] removed from {author}'s #{message['id']}: {', '.join(gone)}"
            return None  # only a thumbnail became ready: nothing to read in a terminal
        if previous is None or previous.get("body") != message.get("body"):
            if previous is None and not message.get("edited_at"):
                return f"[{label}] {author}'s message #{message['id']}: {_reactions_text(message)}"
            return f"[{label}] {author} edited #{message['id']}: {message.get('body', '')}"
        return f"[{label}] reactions on {author}'s #{message['id']}: {_reactions_text(message)}"
    if kind == "room.added":
        view.learn_room(room)
        role = room.get("my_role") or "member"
        return f"* you are in {view.room_label(room['id'])} now (room {room['id']}, {role})"
    if kind == "room.removed":
        label = view.room_label(room)
        view.rooms.pop(room, None)
        return f"* you are no longer in {label}"
    if kind == "room.updated":
        view.learn_room(room)
        topic = f" — {room['topic']}" if room.get("topic") else ""
        return f"* {view.room_label(room['id'])} is now “{room.get('name') or ''}”{topic} (you: {room.get('my_role')})"
    if kind in ("member.joined", "member.left"):
        user = frame.get("user") or {}
        view.learn_user(user)
        verb = "joined" if kind == "member.joined" else "left"
        return f"[{view.room_label(room)}] {user.get('username', '?')} {verb}"
    if kind == "user.updated":
        user = frame.get("user") or {}
        view.learn_user(user)
        return f"* {user.get('username', '?')} is now called “{user.get('display_name') or user.get('username', '?')}”"
    if kind == "typing":
        user = frame.get("user") or {}
        view.learn_user(user)
        return f"[{view.room_label(room)}] {user.get('username', '?')} is typing…"
    if kind == "presence":
        # A status is news only when it changes (a frame may repeat one after a reconnect).
        if view.presence.get(frame["user"]) == frame.get("status"):
            return None
        view.presence[frame["user"]] = frame.get("status")
        return f"* {view.user_name(frame['user'])} is {frame.get('status')}"
    if kind == "read":
        return f"[{view.room_label(room)}] read up to #{frame.get('message_id')}"
    if kind == "error":
        text = f"! {frame.get('code')}: {frame.get('detail')}"
        if frame.get("fields"):
            text = f"! {frame.get('code')}: {_field_errors(frame['fields'])}"
        if frame.get("retry_after") is not None:
            text += f" (retry after {frame['retry_after']} s)"
        return text
    return f"* {json.dumps(frame, ensure_ascii=False)}"


# --- Small pure helpers ---------------------------------------------------------------------


CLOSE_MEANINGS = {
    1000: "closed by the server",
    1001: "closed: the server is going away",
    1006: "connection lost",
    1008: "closed: the server refused the cursor",
    1009: "closed: a frame was too big",
    1011: "closed after a server error",
    1012: "closed: the server is restarting",
    CLOSE_TOKEN_EXPIRED: "closed: the access token expired or its sign-in ended",
    CLOSE_FLOODING: "closed: too many refused frames",
    CLOSE_DROPPED: "closed: the server could not keep up with this client",
}


def describe_close(code: int | None, reason: str = "", *, connected: bool = True) -> str:
    """Say why a socket ended, for the status line before reconnecting."""
    if code is None:
        text = "connection lost" if connected else "could not connect"
    else:
        text = f"{CLOSE_MEANINGS.get(code, 'closed')} ({code})"
    return f"{text}: {reason}" if reason else text


def ws_url(server: str, last_event_id: int | None) -> str:
    """Return the socket address for an http(s) server URL, with the resume cursor if any."""
    parts = urllib.parse.urlsplit(server.rstrip("/"))
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None:
        raise ValueError(f"Unsupported server URL {server!r}: use http:// or https://")
    query = f"last_event_id={last_event_id}" if last_event_id is not None else ""
    return urllib.parse.urlunsplit((scheme, parts.netloc, parts.path + "/ws/", query, ""))


def readable_file(typed: str) -> tuple[str, int]:
    """Return the path and size of the file a person typed (`~` expanded); raise UsageError if it cannot be read."""
    path = os.path.expanduser(typed)
    if not os.path.isfile(path):
        raise UsageError(f"no file at {typed!r}")
    if not os.access(path, os.R_OK):
        raise UsageError(f"cannot read {typed!r}")
    return path, os.path.getsize(path)


def multipart_quote(name: str) -> str:
    """Quote a file name for a multipart header as browsers do: `"`, CR and LF percent-encoded."""
    return name.replace("\r", "%0D").replace("\n", "%0A").replace('"', "%22")


def _token_claim(token: str, name: str) -> float | None:
    """Return a numeric claim of a JWT, read without verifying it (the server does that), or None."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims[name])
    except (IndexError, ValueError, KeyError, TypeError):
        return None


def token_expiry(token: str) -> float | None:
    """Return when a JWT expires (seconds since the epoch), or None if it cannot be read."""
    return _token_claim(token, "exp")


def refresh_delay(token: str, now: float) -> float:
    """Return seconds until the access token should be refreshed: a fifth of its life (at most 60 s) early."""
    expires = token_expiry(token)
    if expires is None:
        return 60.0
    issued = _token_claim(token, "iat")
    lifetime = expires - issued if issued is not None else 300.0
    margin = min(60.0, max(1.0, lifetime / 5))
    return max(0.0, expires - margin - now)


def backoff_delay(attempt: int, *, rand: Callable[[], float] = random.random) -> float:
    """Return the wait before reconnection attempt `attempt` (1, 2, …): doubling, capped, jittered."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, attempt - 1))
    return ceiling / 2 + rand() * ceiling / 2


class TokenBucket:
    """Pace outgoing frames so the server's rate limit never has to refuse them.

    Not shared with the server's limiter: this one waits until a frame may go
    (a client must not lose what its user typed), the server's refuses at once
    and counts across every socket and process. The client also runs without
    the server's code or Django installed.
    """

    def __init__(self, rate: float = SEND_RATE, burst: float = SEND_BURST) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.at = burst, time.monotonic()

    async def take(self) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
            self.at = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            await asyncio.sleep((1 - self.tokens) / self.rate)


# --- REST -------------------------------------------------------------------------------------


class ApiError(Exception):
    """A REST call failed: `status` 0 when the server could not be reached."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        text = (_field_errors(body) if isinstance(body, dict) else str(body)) or f"HTTP {status}"
        super().__init__(text if status == 0 else f"{text} (HTTP {status})")


class Api:
    """Blocking JSON calls to `/api/v1/`; the client runs them in a thread."""

    def __init__(self, server: str) -> None:
        self.base = server.rstrip("/") + "/api/v1/"
        self.access: str | None = None
        self.refresh: str | None = None

    def call(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)  # noqa: S310 (http(s) only, checked in main)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if auth and self.access:
            request.add_header("Authorization", f"Bearer {self.access}")
        return self._send(request, timeout=HTTP_TIMEOUT)

    def upload(self, path: str, file_path: str) -> Any:
        """POST a file from disk as multipart field `file`, streamed in chunks; return the stored File."""
        name = os.path.basename(file_path)
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        boundary = uuid.uuid4().hex
        head = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{multipart_quote(name)}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        size = os.path.getsize(file_path)

        def body() -> Iterator[bytes]:
            yield head
            with open(file_path, "rb") as source:
                while chunk := source.read(UPLOAD_CHUNK):
                    yield chunk
            yield tail

        request = urllib.request.Request(self.base + path, data=body(), method="POST")  # noqa: S310 (http(s) only)
        request.add_header("Accept", "application/json")
        request.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
        # A known length lets the server refuse an oversized file before reading it.
        request.add_header("Content-Length", str(len(head) + size + len(tail)))
        if self.access:
            request.add_header("Authorization", f"Bearer {self.access}")
        return self._send(request, timeout=UPLOAD_TIMEOUT)

    def _send(self, request: urllib.request.Request, *, timeout: float) -> Any:
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                detail = json.loads(raw)
            except ValueError:
                detail = raw.decode(errors="replace")[:200]
            raise ApiError(error.code, detail) from None
        except (urllib.error.URLError, OSError) as error:
            raise ApiError(0, f"cannot reach {self.base}: {getattr(error, 'reason', error)}") from None
        return json.loads(raw) if raw else None

    def take_tokens(self, reply: dict[str, Any]) -> None:
        self.access = reply["access"]
        self.refresh = reply.get("refresh", self.refresh)


# --- The client ---------------------------------------------------------------------------------


class Fatal(Exception):
    """Stop the client with this message and exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


class ChatClient:
    """One signed-in user: a socket that survives disconnects, and the commands typed on stdin."""

    def __init__(
        self,
        *,
        server: str,
        username: str,
        password: str,
        register_email: str | None = None,
        room: str | None = None,
        max_retries: int = 20,
        out: Callable[[str], None] | None = None,
    ) -> None:
        self.server = server
        self.username = username
        self.password = password
        self.register_email = register_email
        self.initial_room = room
        self.max_retries = max_retries
        self.out = out or (lambda line: print(line, flush=True))
        self.api = Api(server)
        self.view = View(server=server)
        self.current: int | None = None
        # The highest event_id seen; None until the first hello.
        self.cursor: int | None = None
        self.ws: ClientConnection | None = None
        self.resuming = False  # this socket was opened with ?last_event_id=
        self.hello_id = 0  # the newest event id when this socket subscribed
        self.live = asyncio.Event()  # set once a socket is past its hello and any replay
        # Messages sent but not yet seen as message.new, by client_id, oldest first.
        self.pending: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.bucket = TokenBucket()
        self.refresh_lock = asyncio.Lock()
        self.quitting = False
        self.exit_status = 0
        self.background: set[asyncio.Task[None]] = set()
        self.drained = asyncio.Event()  # set whenever the last pending message is settled

    # --- REST helpers ---

    async def rest(self, method: str, path: str, body: Any = None) -> Any:
        """Call the API in a thread; on 401 refresh the tokens once and retry."""
        try:
            return await asyncio.to_thread(self.api.call, method, path, body)
        except ApiError as error:
            if error.status != 401:
                raise
        await self.renew_tokens(force=True)
        return await asyncio.to_thread(self.api.call, method, path, body)

    async def sign_in(self) -> None:
        if self.register_email is not None:
            body = {"username": self.username, "email": self.register_email, "password": self.password}
            try:
                reply = await asyncio.to_thread(self.api.call, "POST", "auth/register/", body, auth=False)
            except ApiError as error:
                raise Fatal(f"! could not register: {error}", 2) from None
            self.out(f"* registered {reply['user']['username']}")
        else:
            credentials = {"username": self.username, "password": self.password}
            try:
                reply = await asyncio.to_thread(self.api.call, "POST", "auth/token/", credentials, auth=False)
            except ApiError as error:
                raise Fatal(f"! could not sign in: {error}", 2) from None
        self.api.take_tokens(reply)

    async def renew_tokens(self, *, force: bool = False) -> None:
        """Trade the refresh token for a new pair (it rotates); sign in again if it is dead."""
        stale = self.api.access
        async with self.refresh_lock:
            if self.api.access != stale:
                return  # another task renewed them meanwhile
            expires = token_expiry(self.api.access or "") or 0.0
            if not force and expires - time.time() > 10:
                return
            try:
                reply = await asyncio.to_thread(
                    self.api.call, "POST", "auth/token/refresh/", {"refresh": self.api.refresh}, auth=False
                )
            except ApiError as error:
                if error.status == 0:
                    raise
                # The refresh token expired or was revoked: the password still works.
                credentials = {"username": self.username, "password": self.password}
                try:
                    reply = await asyncio.to_thread(self.api.call, "POST", "auth/token/", credentials, auth=False)
                except ApiError as again:
                    if again.status == 0:
                        raise
                    raise Fatal(f"! signed out: {again}", 2) from None
            self.api.take_tokens(reply)

    async def refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(refresh_delay(self.api.access or "", time.time()))
            try:
                await self.renew_tokens(force=True)
            except ApiError as error:
                self.out(f"* could not refresh the access token ({error}); trying again shortly")
                await asyncio.sleep(5)

    async def load_rooms(self) -> None:
        rooms = await self.rest("GET", "rooms/")
        self.view.rooms = {}
        for room in rooms:
            self.view.learn_room(room)

    # --- The socket ---

    async def connection_loop(self) -> None:
        """Stay connected: resume after every disconnect, with backoff, until quit or a fatal close."""
        failures = 0
        refused_once = False
        while not self.quitting:
            code: int | None = None
            reason = ""
            connected = False
            self.resuming = self.cursor is not None
            try:
                async with connect(
                    ws_url(self.server, self.cursor),
                    additional_headers={"Authorization": f"Bearer {self.api.access}"},
                    open_timeout=HTTP_TIMEOUT,
                ) as ws:
                    self.ws = ws
                    connected = True
                    try:
                        async for raw in ws:
                            await self.on_frame(raw)
                            if self.live.is_set():
                                failures, refused_once = 0, False
                    except ConnectionClosed:
                        pass
                    code, reason = ws.close_code, ws.close_reason or ""
            except InvalidStatus as error:
                status = error.response.status_code
                reason = f"HTTP {status}"
                if status == 403 and refused_once:
                    raise Fatal(
                        "! the server refused the socket (HTTP 403): check the account and the server", 2
                    ) from None
                if status == 403:
                    # Most likely the access token lapsed between checks; a fresh one settles it.
                    refused_once = True
                    await self._renew_quietly(force=True)
            except (OSError, InvalidHandshake, TimeoutError) as error:
                reason = str(error) or type(error).__name__
            finally:
                self.ws = None
                self.live.clear()
            if self.quitting:
                return
            delay: float | None = None
            if code == CLOSE_DEACTIVATED:
                raise Fatal("! this account was deactivated; the server closed the socket (4003)", 3)
            if code == CLOSE_TOKEN_EXPIRED:
                await self._renew_quietly()
                delay = 0.0
            elif code == CLOSE_BAD_CURSOR:
                self.cursor = None  # the server did not accept the cursor: start afresh
            elif code == CLOSE_DROPPED and failures == 0:
                delay = 0.0  # too far behind: resume from the cursor at once
            failures += 1
            if failures > self.max_retries:
                raise Fatal(f"! giving up after {self.max_retries} failed attempts to reconnect", 1)
            if delay is None:
                delay = backoff_delay(failures)
            self.out(f"* {describe_close(code, reason, connected=connected)}; reconnecting in {delay:.1f} s")
            await asyncio.sleep(delay)

    async def _renew_quietly(self, *, force: bool = False) -> None:
        """Renew the tokens before reconnecting; an unreachable server is the reconnect loop's business."""
        try:
            await self.renew_tokens(force=force)
        except ApiError as error:
            self.out(f"* could not renew the access token: {error}")

    async def on_frame(self, raw: str | bytes) -> None:
        """Handle one server frame: drop repeats, print it, keep the cursor and the view current."""
        try:
            frame = json.loads(raw)
        except ValueError:
            self.out("! the server sent a frame that is not JSON")
            return
        if not isinstance(frame, dict):
            return
        kind = frame.get("type")
        event_id = frame.get("event_id")
        if isinstance(event_id, int):
            # A frame at or below the cursor was shown already: show each event once.
            if self.cursor is not None and event_id <= self.cursor:
                return
            self.cursor = event_id
        if kind == "presence" and frame.get("user") not in self.view.users:
            await self._learn_user(frame.get("user"))
        line = format_frame(frame, self.view)
        if line is not None:
            self.out(line)
        if kind == "hello":
            self.hello_id = frame.get("last_event_id") or 0
            if not self.resuming:
                # Live events follow at once, all newer than the hello's id.
                self.cursor = self.hello_id
                await self.become_live()
        elif kind == "resume.done":
            self.cursor = max(self.cursor or 0, frame.get("last_event_id") or 0)
            await self.become_live()
        elif kind == "resync.required":
            # Nothing is replayed: live events continue after the hello's id; reload the rest over REST.
            self.cursor = self.hello_id
            try:
                await self.load_rooms()
            except ApiError as error:
                self.out(f"! could not reload rooms: {error}")
            await self.become_live()
        elif kind == "message.new":
            message = frame.get("message") or {}
            if (message.get("author") or {}).get("id") == self.view.my_id:
                self.settle(message.get("client_id") or "")
        elif kind == "room.removed" and frame.get("room") == self.current:
            self.current = None
            self.out("* pick another room: /rooms lists yours")
        elif kind == "error":
            self.on_refusal(frame)

    async def _learn_user(self, user_id: Any) -> None:
        if not isinstance(user_id, int):
            return
        with contextlib.suppress(ApiError):
            self.view.learn_user(await self.rest("GET", f"users/{user_id}/"))

    async def become_live(self) -> None:
        self.live.set()
        # Resend what the server has not confirmed; one client_id never posts twice.
        for frame in list(self.pending.values()):
            await self.send_frame(frame)

    def on_refusal(self, frame: dict[str, Any]) -> None:
        client_id = frame.get("client_id")
        if not isinstance(client_id, str) or client_id not in self.pending:
            return
        if frame.get("code") == "rate_limited":
            retry = float(frame.get("retry_after") or 1.0)
            task = asyncio.create_task(self._resend_later(client_id, retry))
            self.background.add(task)
            task.add_done_callback(self.background.discard)
        else:
            self.settle(client_id)

    def settle(self, client_id: str) -> None:
        """Forget a sent message: the server posted it, or refused it for good."""
        self.pending.pop(client_id, None)
        if not self.pending:
            self.drained.set()

    async def _resend_later(self, client_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        frame = self.pending.get(client_id)
        if frame is not None:
            await self.send_frame(frame)

    async def send_frame(self, frame: dict[str, Any]) -> bool:
        """Send a frame if a socket is live; return whether it went out."""
        await self.bucket.take()
        ws = self.ws
        if ws is None or not self.live.is_set():
            return False
        try:
            await ws.send(json.dumps(frame, ensure_ascii=False))
        except ConnectionClosed:
            return False
        return True

    # --- Commands ---

    async def input_loop(self, lines: asyncio.Queue[str | None]) -> None:
        while True:
            line = await lines.get()
            if line is None:
                return
            try:
                command = parse_line(line)
            except UsageError as error:
                self.out(f"! {error}")
                continue
            if command is None:
                continue
            if command.name == "quit":
                return
            try:
                await self.run_command(command)
            except ApiError as error:
                self.out(f"! {error}")

    async def run_command(self, command: Command) -> None:
        handler = getattr(self, f"command_{command.name}")
        await handler(command.arg)

    async def command_help(self, arg: str) -> None:
        self.out(HELP)

    async def command_say(self, text: str, attachments: list[int] | None = None) -> None:
        if self.current is None:
            self.out("! no current room: pick one with /room, /join, /create or /dm (/rooms lists yours)")
            return
        client_id = uuid.uuid4().hex
        frame: dict[str, Any] = {"type": "message.send", "room": self.current, "body": text, "client_id": client_id}
        if attachments:
            frame["attachments"] = attachments
        self.pending[client_id] = frame
        if not await self.send_frame(frame):
            self.out("* not connected; the message will go out on reconnection")

    async def command_upload(self, arg: str) -> None:
        """Upload a file to the current room, then post it as a message through the same queue as text."""
        if self.current is None:
            self.out("! no current room: pick one with /room, /join, /create or /dm (/rooms lists yours)")
            return
        room_id = self.current
        try:
            file_path, size = await asyncio.to_thread(readable_file, arg)
        except UsageError as error:
            self.out(f"! {error}")
            return
        self.out(f"* uploading {os.path.basename(file_path)} ({format_size(size)})…")
        path = f"rooms/{room_id}/uploads/"
        try:
            stored = await asyncio.to_thread(self.api.upload, path, file_path)
        except ApiError as error:
            if error.status != 401:
                raise
            await self.renew_tokens(force=True)
            stored = await asyncio.to_thread(self.api.upload, path, file_path)
        if self.current != room_id:
            self.out(f"* uploaded {stored['name']}; switch back to {self.view.room_label(room_id)} to share it")
            return
        await self.command_say("", [stored["id"]])

    async def command_rooms(self, arg: str) -> None:
        await self.load_rooms()
        if not self.view.rooms:
            self.out("* you are in no rooms yet: /join, /create or /dm")
            return
        for room in sorted(self.view.rooms.values(), key=lambda r: r["id"]):
            mark = "*" if room["id"] == self.current else " "
            label = self.view.room_label(room["id"])
            unread = f", {room['unread_count']} unread" if room.get("unread_count") else ""
            self.out(f"{mark} {room['id']:>5}  {label}  ({room.get('member_count')} members{unread})")

    async def command_room(self, arg: str) -> None:
        room = self.view.find_room(arg)
        if room is None:
            await self.load_rooms()
            room = self.view.find_room(arg)
        if room is None:
            self.out(f"! you are not in a room called {arg!r} (/rooms lists yours, /join joins a public channel)")
            return
        self.switch_to(room)

    async def command_join(self, arg: str) -> None:
        room_id = await self._public_room_id(arg)
        if room_id is None:
            return
        room = await self.rest("POST", f"rooms/{room_id}/join/")
        self.view.learn_room(room)
        self.switch_to(room)

    async def _public_room_id(self, arg: str) -> int | None:
        text = arg.strip().lstrip("#")
        if _is_number(text):
            return int(text)
        page = await self.rest("GET", "rooms/public/?" + urllib.parse.urlencode({"q": text, "limit": 200}))
        wanted = {text.lower(), slugify(text)}
        matches = [r for r in page["results"] if r["slug"] in wanted or r["name"].lower() in wanted]
        if len(matches) == 1:
            return int(matches[0]["id"])
        names = ", ".join(f"#{r['slug']} ({r['id']})" for r in page["results"][:10])
        self.out(f"! no public channel called {arg!r}" + (f"; similar: {names}" if names else ""))
        return None

    async def command_create(self, arg: str) -> None:
        room = await self.rest("POST", "rooms/", {"name": arg})
        self.view.learn_room(room)
        self.out(f"* created {self.view.room_label(room['id'])} (room {room['id']})")
        self.switch_to(room)

    async def command_dm(self, arg: str) -> None:
        page = await self.rest("GET", "users/?" + urllib.parse.urlencode({"q": arg, "limit": 200}))
        user = next((u for u in page["results"] if u["username"].lower() == arg.lower()), None)
        if user is None:
            self.out(f"! no user called {arg!r}")
            return
        room = await self.rest("POST", "dms/", {"users": [user["id"]]})
        self.view.learn_room(room)
        self.switch_to(room)

    async def command_history(self, arg: str) -> None:
        if self.current is None:
            self.out("! no current room")
            return
        page = await self.rest("GET", f"rooms/{self.current}/messages/?limit={int(arg)}")
        if not page["results"]:
            self.out(f"* {self.view.room_label(self.current)} has no messages yet")
        for message in page["results"]:
            self.view.remember_message(message)
            if message.get("deleted"):
                self.out(f"[{self.view.room_label(self.current)}] (message #{message['id']} deleted)")
            else:
                self.out(_message_line(self.view, self.current, message))
            hint = _thread_hint(self.view, self.current, message)
            if hint:
                self.out(hint)

    async def command_reply(self, arg: str) -> None:
        target, _, text = arg.partition(" ")
        known = self.view.messages.get(int(target))
        # The reply goes to the room of the message when it was seen here, else the current room.
        room_id = known["room"] if known else self.current
        if room_id is None:
            self.out("! no current room: pick one with /room, /join, /create or /dm (/rooms lists yours)")
            return
        client_id = uuid.uuid4().hex
        frame = {"type": "message.send", "room": room_id, "body": text, "client_id": client_id, "parent": int(target)}
        self.pending[client_id] = frame
        if not await self.send_frame(frame):
            self.out("* not connected; the reply will go out on reconnection")

    async def command_thread(self, arg: str) -> None:
        thread = await self.rest("GET", f"messages/{int(arg.lstrip('#'))}/thread/?limit=200")
        root = thread["root"]
        self.view.remember_message(root)
        if root.get("deleted"):
            self.out(f"[{self.view.room_label(root['room'])}] (message #{root['id']} deleted)")
        else:
            self.out(_message_line(self.view, root["room"], root))
        if not thread["results"]:
            self.out(f"[{self.view.room_label(root['room'])}]   ↳ no replies yet (/reply {root['id']} <text>)")
        for reply in thread["results"]:
            self.view.remember_message(reply)
            self.out(_message_line(self.view, root["room"], reply))

    async def command_notify(self, arg: str) -> None:
        head, _, value = arg.partition(" ")
        room_path = f"rooms/{self.current}/notifications/" if self.current is not None else None
        if head in ("all", "mentions", "none", "mute", "unmute"):
            if room_path is None:
                self.out("! no current room: pick one with /room first")
                return
            body: dict[str, Any] = {"level": head}
            if head == "mute":
                body = {"muted_until": _in_minutes(int(value))}
            elif head == "unmute":
                body = {"muted_until": None}
            setting = await self.rest("PATCH", room_path, body)
            self.out(f"* {self.view.room_label(self.current)}: {_room_setting_text(setting)}")  # type: ignore[arg-type]
            return
        changes: dict[str, Any] = {}
        if head in ("email", "push"):
            changes[head] = value == "on"
        elif head == "delay":
            changes["email_delay_seconds"] = int(value) * 60
        elif head == "dnd":
            changes["dnd_until"] = None if value == "off" else _in_minutes(int(value))
        elif head == "tz":
            changes["timezone"] = value
        prefs = await self.rest("PATCH" if changes else "GET", "users/me/preferences/", changes or None)
        dnd = prefs.get("dnd_until")
        self.out(
            f"* push {'on' if prefs['push'] else 'off'}; email {'on' if prefs['email'] else 'off'}"
            f" after {prefs['email_delay_seconds'] // 60} min unread; do not disturb"
            f" {'until ' + dnd if dnd else 'off'}; time zone {prefs['timezone']}"
        )
        if room_path is not None and not changes:
            setting = await self.rest("GET", room_path)
            self.out(f"* {self.view.room_label(self.current)}: {_room_setting_text(setting)}")  # type: ignore[arg-type]

    def switch_to(self, room: dict[str, Any]) -> None:
        self.current = room["id"]
        self.out(f"* now talking in {self.view.room_label(room['id'])}")

    # --- Running ---

    async def run(self, lines: asyncio.Queue[str | None]) -> int:
        """Sign in, then talk until /quit, the end of input, or a fatal error; return the exit status."""
        try:
            await self.sign_in()
            await self.load_rooms()
            if self.initial_room:
                await self.command_room(self.initial_room)
        except Fatal as error:
            self.out(str(error))
            return error.status
        except ApiError as error:
            self.out(f"! {error}")
            return 1
        refresher = asyncio.create_task(self.refresh_loop())
        connection = asyncio.create_task(self.connection_loop())
        inputs = asyncio.create_task(self.input_loop(lines))
        try:
            done, _ = await asyncio.wait({refresher, connection, inputs}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # raises the Fatal that ended a loop
            await self.flush_pending()
            return self.exit_status
        except Fatal as error:
            self.out(str(error))
            return error.status
        finally:
            self.quitting = True
            if self.ws is not None:
                await self.ws.close()
            for task in (refresher, connection, inputs, *self.background):
                task.cancel()
            await asyncio.gather(refresher, connection, inputs, *self.background, return_exceptions=True)

    async def flush_pending(self) -> None:
        if self.pending:
            self.drained.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drained.wait(), QUIT_FLUSH_SECONDS)
        if self.pending:
            self.out(f"! leaving with {len(self.pending)} message(s) the server has not confirmed")
            self.exit_status = 1


def _read_lines(loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str | None]) -> None:
    """Feed stdin to the event loop line by line; None marks the end of input."""

    def put(item: str | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has already stopped
            loop.call_soon_threadsafe(lines.put_nowait, item)

    for line in sys.stdin:
        put(line)
    put(None)


async def _main(args: argparse.Namespace, password: str) -> int:
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    threading.Thread(target=_read_lines, args=(asyncio.get_running_loop(), lines), daemon=True).start()
    client = ChatClient(
        server=args.server,
        username=args.username,
        password=password,
        register_email=args.email if args.register else None,
        room=args.room,
        max_retries=args.max_retries,
    )
    return await client.run(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m client",
        description="Chat from the terminal: type to talk, /help for commands.",
    )
    parser.add_argument("--server", default="http://127.0.0.1:8000", help="server URL (default %(default)s)")
    parser.add_argument("--username", required=True)
    parser.add_argument("--password", help="default: $CHAT_PASSWORD, else asked for")
    parser.add_argument("--register", action="store_true", help="create the account first (needs --email)")
    parser.add_argument("--email", help="the new account's email address, with --register")
    parser.add_argument("--room", help="start in this room (#channel, @user or id)")
    parser.add_argument(
        "--max-retries", type=int, default=20, help="failed reconnections in a row before giving up (default 20)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.register and not args.email:
        parser.error("--register needs --email")
    if urllib.parse.urlsplit(args.server).scheme not in ("http", "https"):
        parser.error("--server must be an http:// or https:// URL")
    password = args.password or os.environ.get("CHAT_PASSWORD") or getpass.getpass(f"Password for {args.username}: ")
    try:
        return asyncio.run(_main(args, password))
    except KeyboardInterrupt:
        return 130
