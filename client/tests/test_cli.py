"""The command-line client: its pure parts, and two clients talking through a real Daphne server."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client.cli import (
    BACKOFF_CAP,
    ChatClient,
    Command,
    UsageError,
    View,
    backoff_delay,
    describe_close,
    format_frame,
    parse_line,
    refresh_delay,
    token_expiry,
    ws_url,
)

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"

ALICE = {"id": 1, "username": "alice", "display_name": "Alice"}
BOB = {"id": 2, "username": "bob", "display_name": "Bob"}
GENERAL = {"id": 7, "kind": "channel", "name": "General", "slug": "general", "topic": "", "my_role": "member"}
DM = {"id": 9, "kind": "direct", "name": "", "slug": "", "members": [ALICE, BOB], "my_role": "member"}


def message(id: int = 12, body: str = "hello", **extra: Any) -> dict[str, Any]:
    return {
        "id": id,
        "room": 7,
        "author": ALICE,
        "body": body,
        "client_id": None,
        "parent": None,
        "edited_at": None,
        "deleted": False,
        "reactions": [],
        **extra,
    }


def view_of_bob() -> View:
    view = View(me=BOB)
    view.learn_user(BOB)
    view.learn_room(GENERAL)
    view.learn_room(DM)
    return view


# --- Parsing typed lines -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("hello there\n", Command("say", "hello there")),
        ("//shrug", Command("say", "/shrug")),
        ("/rooms", Command("rooms")),
        ("/join general", Command("join", "general")),
        ("/join   #General  ", Command("join", "#General")),
        ("/room 7", Command("room", "7")),
        ("/create Team Chat", Command("create", "Team Chat")),
        ("/dm @bob", Command("dm", "bob")),
        ("/history", Command("history", "20")),
        ("/history 5", Command("history", "5")),
        ("/QUIT", Command("quit")),
    ],
)
def test_parse_line_reads_text_and_commands(line: str, expected: Command) -> None:
    assert parse_line(line) == expected


def test_parse_line_ignores_blank_lines() -> None:
    assert parse_line("   \n") is None


@pytest.mark.parametrize(
    "line",
    [
        "/join",
        "/room",
        "/create",
        "/dm",
        "/dm two words",
        "/history 0",
        "/history 201",
        "/history x",
        "/history ²",
        "/nope",
    ],
)
def test_parse_line_refuses_malformed_commands(line: str) -> None:
    with pytest.raises(UsageError):
        parse_line(line)


@pytest.mark.parametrize(
    ("line", "arg"),
    [
        ("/notify", ""),
        ("/notify Mentions", "mentions"),
        ("/notify mute 60", "mute 60"),
        ("/notify unmute", "unmute"),
        ("/notify email OFF", "email off"),
        ("/notify push on", "push on"),
        ("/notify dnd 30", "dnd 30"),
        ("/notify dnd off", "dnd off"),
        ("/notify delay 5", "delay 5"),
        ("/notify tz Europe/Paris", "tz Europe/Paris"),
    ],
)
def test_parse_line_reads_notify_settings(line: str, arg: str) -> None:
    assert parse_line(line) == Command("notify", arg)


@pytest.mark.parametrize(
    "line", ["/notify loud", "/notify mute", "/notify mute soon", "/notify mute 0", "/notify email maybe", "/notify tz"]
)
def test_parse_line_refuses_unknown_notify_settings(line: str) -> None:
    with pytest.raises(UsageError, match="/notify"):
        parse_line(line)


def test_parse_line_refuses_arguments_to_commands_that_take_none() -> None:
    with pytest.raises(UsageError):
        parse_line("/quit now")


# --- Showing frames ------------------------------------------------------------------------


def test_message_new_reads_as_room_author_and_body() -> None:
    frame = {"type": "message.new", "event_id": 3, "room": 7, "message": message()}
    assert format_frame(frame, view_of_bob()) == "[#general] alice: hello"


def test_direct_rooms_are_named_after_the_other_people() -> None:
    frame = {"type": "message.new", "event_id": 3, "room": 9, "message": message(room=9)}
    assert format_frame(frame, view_of_bob()) == "[@alice] alice: hello"


def test_replies_name_their_parent() -> None:
    frame = {"type": "message.new", "event_id": 3, "room": 7, "message": message(parent=4)}
    assert format_frame(frame, view_of_bob()) == "[#general] alice (reply to #4): hello"


def test_message_updated_tells_edits_reactions_and_deletions_apart() -> None:
    view = view_of_bob()
    format_frame({"type": "message.new", "event_id": 3, "room": 7, "message": message()}, view)
    edited = message(body="hello again", edited_at="2026-01-01T00:00:00Z")
    reacted = {**edited, "reactions": [{"emoji": "👍", "count": 2, "users": [1, 2]}]}
    deleted = {**edited, "body": "", "deleted": True, "reactions": []}

    def show(msg: dict[str, Any]) -> str | None:
        return format_frame({"type": "message.updated", "event_id": 4, "room": 7, "message": msg}, view)

    assert show(edited) == "[#general] alice edited #12: hello again"
    assert show(reacted) == "[#general] reactions on alice's #12: 👍 2"
    assert show(deleted) == "[#general] alice's message #12 was deleted"


def test_membership_frames_read_as_joins_and_leaves() -> None:
    view = view_of_bob()
    joined = {"type": "member.joined", "event_id": 5, "room": 7, "user": {"id": 3, "username": "carol"}}
    left = {"type": "member.left", "event_id": 6, "room": 7, "user": {"id": 3, "username": "carol"}}
    assert format_frame(joined, view) == "[#general] carol joined"
    assert format_frame(left, view) == "[#general] carol left"


def test_user_updated_reads_as_a_new_name() -> None:
    frame = {"type": "user.updated", "event_id": 8, "user": {"id": 3, "username": "carol", "display_name": "Caz"}}
    assert format_frame(frame, view_of_bob()) == "* carol is now called “Caz”"


def test_room_added_and_removed_keep_the_room_list_current() -> None:
    view = View(me=BOB)
    added = {"type": "room.added", "event_id": 5, "room": {**GENERAL, "my_role": "owner"}}
    assert format_frame(added, view) == "* you are in #general now (room 7, owner)"
    assert 7 in view.rooms
    assert format_frame({"type": "room.removed", "event_id": 6, "room": 7}, view) == "* you are no longer in #general"
    assert 7 not in view.rooms


def test_room_updated_shows_the_new_name_topic_and_role() -> None:
    view = view_of_bob()
    town = {**GENERAL, "name": "Town", "slug": "town", "topic": "Hi"}
    updated = {"type": "room.updated", "event_id": 8, "room": town}
    assert format_frame(updated, view) == "* #town is now “Town” — Hi (you: member)"


def test_typing_and_read_frames_are_shown() -> None:
    view = view_of_bob()
    assert format_frame({"type": "typing", "room": 7, "user": ALICE}, view) == "[#general] alice is typing…"
    read = {"type": "read", "event_id": 9, "room": 7, "message_id": 12}
    assert format_frame(read, view) == "[#general] read up to #12"


def test_presence_is_shown_once_per_change() -> None:
    view = view_of_bob()
    online = {"type": "presence", "user": 1, "status": "online"}
    assert format_frame(online, view) == "* alice is online"
    # The server repeats it for every room the two share.
    assert format_frame(online, view) is None
    assert format_frame({**online, "status": "offline"}, view) == "* alice is offline"


def test_errors_show_their_code_fields_and_retry_time() -> None:
    view = view_of_bob()
    invalid = {
        "type": "error",
        "code": "invalid",
        "detail": "body: A message cannot be empty.",
        "fields": {"body": "A message cannot be empty."},
        "client_id": "c1",
    }
    limited = {"type": "error", "code": "rate_limited", "detail": "Too many frames; slow down.", "retry_after": 0.1}
    assert format_frame(invalid, view) == "! invalid: body: A message cannot be empty."
    assert format_frame(limited, view) == "! rate_limited: Too many frames; slow down. (retry after 0.1 s)"


def test_hello_records_who_the_client_is() -> None:
    view = View()
    line = format_frame({"type": "hello", "user": BOB, "last_event_id": 41}, view)
    assert line == "* connected as bob (server at event 41)"
    assert view.my_id == 2


def test_rooms_are_found_by_id_name_slug_or_dm_partner() -> None:
    view = view_of_bob()
    for text in ("7", "#general", "general", "General"):
        assert view.find_room(text) == GENERAL, text
    assert view.find_room("@alice") == DM
    assert view.find_room("#nowhere") is None
    assert view.find_room("²") is None


# --- Connection helpers --------------------------------------------------------------------


def test_ws_url_follows_the_server_scheme_and_carries_the_cursor() -> None:
    assert ws_url("http://127.0.0.1:8000", None) == "ws://127.0.0.1:8000/ws/"
    assert ws_url("https://chat.example.com/", 42) == "wss://chat.example.com/ws/?last_event_id=42"
    with pytest.raises(ValueError, match="Unsupported"):
        ws_url("ftp://example.com", None)


def _jwt(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part(claims)}.signature"


def test_access_token_is_refreshed_before_it_expires() -> None:
    token = _jwt({"iat": 1000, "exp": 1900})  # 15 minutes
    assert token_expiry(token) == 1900
    assert refresh_delay(token, now=1000) == 840  # a minute early
    short = _jwt({"iat": 1000, "exp": 1060})
    assert refresh_delay(short, now=1000) == 48  # a fifth of its life early
    assert refresh_delay(token, now=5000) == 0
    assert token_expiry("not a token") is None


def test_backoff_grows_and_stays_bounded() -> None:
    assert backoff_delay(1, rand=lambda: 1.0) == 0.5
    assert backoff_delay(3, rand=lambda: 1.0) == 2.0
    assert all(backoff_delay(attempt) <= BACKOFF_CAP for attempt in range(1, 100))
    assert backoff_delay(50, rand=lambda: 0.0) == BACKOFF_CAP / 2


def test_close_codes_are_explained_before_reconnecting() -> None:
    assert describe_close(4001) == "closed: the access token expired or its sign-in ended (4001)"
    assert describe_close(4009) == "closed: the server could not keep up with this client (4009)"
    assert describe_close(4321, "why") == "closed (4321): why"
    assert describe_close(None, "refused", connected=False) == "could not connect: refused"


def test_client_shows_each_event_once_and_keeps_the_highest_id() -> None:
    printed: list[str] = []
    client = ChatClient(server="http://127.0.0.1:1", username="bob", password="x", out=printed.append)
    client.view = view_of_bob()

    async def feed() -> None:
        client.resuming = True  # as if opened with ?last_event_id=
        client.cursor = 2
        await client.on_frame(json.dumps({"type": "hello", "user": BOB, "last_event_id": 4}))
        for event_id in (3, 4, 3):
            frame = {"type": "message.new", "event_id": event_id, "room": 7, "message": message(id=event_id)}
            await client.on_frame(json.dumps(frame))
        await client.on_frame(json.dumps({"type": "resume.done", "last_event_id": 4}))

    asyncio.run(feed())
    assert printed == [
        "* connected as bob (server at event 4)",
        "[#general] alice: hello",
        "[#general] alice: hello",
        "* caught up (event 4)",
    ]
    assert client.cursor == 4
    assert client.live.is_set()


# --- Two clients through a real server -------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Process:
    """A child process whose output lines can be awaited."""

    def __init__(self, args: list[str], env: dict[str, str], *, stdin: bool = False) -> None:
        self.popen = subprocess.Popen(  # noqa: S603 (our own interpreter and modules)
            args,
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, text: str, timeout: float = 15.0) -> str:
        """Return the first line from now on that contains `text`; fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(0.01, remaining))
            except queue.Empty:
                line = ""
            if line is None or remaining <= 0:
                raise AssertionError(f"never saw {text!r}; output so far:\n" + "\n".join(self.seen))
            self.seen.append(line)
            if text in line:
                return line

    def type(self, line: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(line + "\n")
        self.popen.stdin.flush()

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=10)


@pytest.fixture
def chat_server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """Run Daphne on a fresh SQLite file; yield its URL and the environment clients use."""
    env = {
        **os.environ,
        "SQLITE_PATH": str(tmp_path / "db.sqlite3"),
        # Empty, not absent: a developer's .env must not point this server elsewhere.
        "DATABASE_URL": "",
        "REDIS_URL": "",
        "DEBUG": "1",
        "TESTING": "1",
        "PYTHONUNBUFFERED": "1",
        "CHAT_PASSWORD": PASSWORD,
    }
    env.pop("CHAT_TEST_HOLD_BEFORE_COMMIT", None)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True, timeout=120
    )
    port = _free_port()
    server = Process(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "chatproject.asgi:application"], env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=1):  # noqa: S310
                    break
            except OSError:
                if time.monotonic() > deadline or server.popen.poll() is not None:
                    raise AssertionError("Daphne did not start:\n" + "\n".join(_drain(server))) from None
                time.sleep(0.2)
        yield url, env
    finally:
        server.stop()


def _drain(process: Process) -> list[str]:
    lines = []
    while True:
        try:
            line = process.lines.get(timeout=0.5)
        except queue.Empty:
            return lines
        if line is None:
            return lines
        lines.append(line)


def test_two_clients_chat_in_a_channel_through_a_real_server(chat_server: tuple[str, dict[str, str]]) -> None:
    url, env = chat_server
    clients: list[Process] = []

    def start(name: str) -> Process:
        args = [sys.executable, "-m", "client", "--server", url, "--username", name]
        client = Process([*args, "--register", "--email", f"{name}@example.com"], env, stdin=True)
        clients.append(client)
        return client

    try:
        alice = start("alice")
        alice.expect("* connected as alice")
        bob = start("bob")
        bob.expect("* connected as bob")

        alice.type("/create General")
        alice.expect("* now talking in #general")
        bob.type("/join general")
        bob.expect("* now talking in #general")
        alice.expect("[#general] bob joined")

        alice.type("hello bob")
        assert bob.expect("[#general] alice:") == "[#general] alice: hello bob"
        alice.expect("[#general] alice: hello bob")  # the sender's own socket hears it too

        bob.type("/history 5")
        assert bob.expect("[#general] alice:") == "[#general] alice: hello bob"

        bob.type("/notify all")
        assert bob.expect("* #general:") == "* #general: notifies every message"
        bob.type("/notify email off")
        bob.expect("* push on; email off after 2 min unread; do not disturb off; time zone UTC")
        bob.type("/notify")
        bob.expect("* push on; email off")
        bob.expect("* #general: notifies every message")

        for client in (alice, bob):
            client.type("/quit")
        assert alice.popen.wait(timeout=15) == 0
        assert bob.popen.wait(timeout=15) == 0
    finally:
        for client in clients:
            client.stop()
