"""The command-line client: its pure parts, and two clients talking through a real Daphne server."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import queue
import re
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
    Api,
    ApiError,
    ChatClient,
    Command,
    UsageError,
    View,
    backoff_delay,
    describe_close,
    format_frame,
    format_size,
    multipart_quote,
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
        ("/upload ~/My Pictures/cat.png", Command("upload", "~/My Pictures/cat.png")),
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
        "/upload",
        "/upload   ",
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
    assert format_frame(frame, view_of_bob()) == "[#general] alice: hello  #12"


def test_direct_rooms_are_named_after_the_other_people() -> None:
    frame = {"type": "message.new", "event_id": 3, "room": 9, "message": message(room=9)}
    assert format_frame(frame, view_of_bob()) == "[@alice] alice: hello  #12"


def test_replies_show_as_arrows_under_their_root_and_name_it() -> None:
    frame = {"type": "message.new", "event_id": 3, "room": 7, "message": message(parent=4)}
    assert format_frame(frame, view_of_bob()) == "[#general]   ↳ alice: hello  #12 (thread #4)"


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("/reply 12 sounds good", Command("reply", "12 sounds good")),
        ("/reply #12   spaced  ", Command("reply", "12 spaced")),
        ("/thread 12", Command("thread", "12")),
        ("/thread #12", Command("thread", "#12")),
    ],
)
def test_reply_and_thread_commands_parse(line: str, command: Command) -> None:
    assert parse_line(line) == command


@pytest.mark.parametrize("line", ["/reply", "/reply 12", "/reply twelve hi", "/reply ² hi", "/thread", "/thread x"])
def test_reply_and_thread_commands_refuse_bad_arguments(line: str) -> None:
    with pytest.raises(UsageError):
        parse_line(line)


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
        "[#general] alice: hello  #3",
        "[#general] alice: hello  #4",
        "* caught up (event 4)",
    ]
    assert client.cursor == 4
    assert client.live.is_set()


# --- Files --------------------------------------------------------------------------------------

PHOTO = {
    "id": 31,
    "name": "cat.png",
    "content_type": "image/png",
    "size": 2_411_724,
    "url": "/api/v1/files/31/",
    "thumbnail_url": None,
    "width": 1600,
    "height": 1200,
}
REPORT = {
    **PHOTO,
    "id": 32,
    "name": "report.pdf",
    "content_type": "application/pdf",
    "size": 812,
    "url": "/api/v1/files/32/",
    "width": None,
    "height": None,
}


def test_attachments_print_their_name_size_type_and_url_under_the_message() -> None:
    view = view_of_bob()
    view.server = "http://chat.example:8000"
    frame = {"type": "message.new", "room": 7, "message": message(body="", attachments=[PHOTO, REPORT])}
    assert format_frame(frame, view) == (
        "[#general] alice:   #12\n"
        "    file: cat.png (2.3 MB, image/png) http://chat.example:8000/api/v1/files/31/\n"
        "    file: report.pdf (812 bytes, application/pdf) http://chat.example:8000/api/v1/files/32/"
    )


def test_a_thumbnail_becoming_ready_prints_nothing() -> None:
    view = view_of_bob()
    format_frame({"type": "message.new", "room": 7, "message": message(attachments=[PHOTO])}, view)
    ready = {**PHOTO, "thumbnail_url": "/api/v1/files/31/thumbnail/"}
    assert format_frame({"type": "message.updated", "room": 7, "message": message(attachments=[ready])}, view) is None


def test_a_file_removed_by_a_moderator_is_reported() -> None:
    view = view_of_bob()
    format_frame({"type": "message.new", "room": 7, "message": message(attachments=[PHOTO, REPORT])}, view)
    frame = {"type": "message.updated", "room": 7, "message": message(attachments=[PHOTO])}
    assert format_frame(frame, view) == "[#general] removed from alice's #12: report.pdf"


def test_sizes_read_as_people_say_them() -> None:
    assert [format_size(n) for n in (0, 1, 812, 1536, 25 * 1024 * 1024, 3 * 1024**3)] == [
        "0 bytes",
        "1 byte",
        "812 bytes",
        "1.5 KB",
        "25 MB",
        "3.0 GB",
    ]


def test_file_names_are_quoted_for_the_multipart_header_as_browsers_do() -> None:
    assert multipart_quote('say "hi"\r\n.txt') == "say %22hi%22%0D%0A.txt"


@pytest.fixture
def upload_receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A loopback HTTP server that parses each multipart POST it receives and answers 201 with a File."""
    import email.parser
    import email.policy
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[dict[str, Any]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            raw = self.rfile.read(length)
            head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
            form = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
            part = next(iter(form.iter_parts()))
            received.append(
                {
                    "path": self.path,
                    "authorization": self.headers["Authorization"],
                    "length": length,
                    "field": part.get_param("name", header="content-disposition"),
                    "filename": part.get_filename(),
                    "content_type": part.get_content_type(),
                    "bytes": part.get_payload(decode=True),
                }
            )
            status, reply = (413, {"file": ["Too big."]}) if "refuse" in self.path else (201, {"id": 5})
            body = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_upload_sends_the_file_as_multipart_field_file_with_its_length(
    upload_receiver: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    url, received = upload_receiver
    content = bytes(range(256)) * 1000  # several read chunks, every byte value
    path = tmp_path / "données brutes.bin"
    path.write_bytes(content)
    api = Api(url)
    api.access = "token-123"

    assert api.upload("rooms/7/uploads/", str(path)) == {"id": 5}

    [request] = received
    assert request["path"] == "/api/v1/rooms/7/uploads/"
    assert request["authorization"] == "Bearer token-123"
    assert request["field"] == "file"
    assert request["filename"] == "données brutes.bin"
    assert request["content_type"] == "application/octet-stream"
    assert request["bytes"] == content


def test_a_refused_upload_raises_with_the_servers_reason(
    upload_receiver: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    url, _ = upload_receiver
    path = tmp_path / "big.png"
    path.write_bytes(b"x" * 10)
    with pytest.raises(ApiError) as refused:
        Api(url).upload("rooms/7/uploads/?refuse", str(path))
    assert refused.value.status == 413
    assert "file: Too big." in str(refused.value)


def test_upload_without_a_current_room_or_file_says_so(tmp_path: Path) -> None:
    printed: list[str] = []
    client = ChatClient(server="http://127.0.0.1:1", username="bob", password="x", out=printed.append)
    client.view = view_of_bob()

    async def run() -> None:
        await client.command_upload(str(tmp_path / "a.txt"))
        client.current = 7
        await client.command_upload(str(tmp_path / "missing.txt"))
        await client.command_upload(str(tmp_path))

    asyncio.run(run())
    assert printed == [
        "! no current room: pick one with /room, /join, /create or /dm (/rooms lists yours)",
        f"! no file at {str(tmp_path / 'missing.txt')!r}",
        f"! no file at {str(tmp_path)!r}",
    ]


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

        alice.type("/create Lounge")
        alice.expect("* now talking in #lounge")
        bob.type("/join lounge")
        bob.expect("* now talking in #lounge")
        alice.expect("[#lounge] bob joined")

        alice.type("hello bob")
        line = bob.expect("[#lounge] alice:")
        assert re.fullmatch(r"\[#lounge\] alice: hello bob  #\d+", line), line
        alice.expect("[#lounge] alice: hello bob")  # the sender's own socket hears it too
        root_id = line.rsplit("#", 1)[1]

        bob.type(f"/reply {root_id} hi from the thread")
        assert alice.expect("[#lounge]   ↳ bob:").endswith(f"(thread #{root_id})")

        bob.type("/history 5")
        assert bob.expect("[#lounge] alice:") == line
        assert bob.expect("[#lounge]   ↳") == f"[#lounge]   ↳ 1 reply (/thread {root_id})"
        alice.type(f"/thread {root_id}")
        alice.expect("[#lounge] alice: hello bob")
        assert "hi from the thread" in alice.expect("[#lounge]   ↳ bob:")

        for client in (alice, bob):
            client.type("/quit")
        assert alice.popen.wait(timeout=15) == 0
        assert bob.popen.wait(timeout=15) == 0
    finally:
        for client in clients:
            client.stop()


def test_a_file_uploaded_from_the_terminal_reaches_the_other_client_with_a_working_url(
    chat_server: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, env = chat_server
    notes = tmp_path / "meeting notes.txt"
    notes.write_text("Agenda: ship file sharing.\n")
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
        alice.type("/create Lounge")
        alice.expect("* now talking in #lounge")
        bob.type("/join lounge")
        bob.expect("* now talking in #lounge")
        alice.expect("[#lounge] bob joined")

        alice.type(f"/upload {notes}")
        alice.expect("* uploading meeting notes.txt (27 bytes)")
        assert bob.expect("[#lounge] alice:") == "[#lounge] alice:   #1"
        line = bob.expect("file: meeting notes.txt")
        assert line.startswith("    file: meeting notes.txt (27 bytes, text/plain) http://127.0.0.1:")
        file_url = line.rsplit(" ", 1)[1]

        # The printed URL is the file: bob, a member, downloads exactly what alice sent.
        credentials = json.dumps({"username": "bob", "password": PASSWORD}).encode()
        token_request = urllib.request.Request(  # noqa: S310 (loopback)
            f"{url}/api/v1/auth/token/", data=credentials, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(token_request, timeout=10) as response:  # noqa: S310
            access = json.loads(response.read())["access"]
        download = urllib.request.Request(file_url, headers={"Authorization": f"Bearer {access}"})  # noqa: S310
        with urllib.request.urlopen(download, timeout=10) as response:  # noqa: S310
            assert response.read() == notes.read_bytes()

        bob.type("/notify all")
        assert bob.expect("* #lounge:") == "* #lounge: notifies every message"
        bob.type("/notify email off")
        bob.expect("* push on; email off after 2 min unread; do not disturb off; time zone UTC")
        bob.type("/notify")
        bob.expect("* push on; email off")
        bob.expect("* #lounge: notifies every message")

        for client in (alice, bob):
            client.type("/quit")
        assert alice.popen.wait(timeout=15) == 0
        assert bob.popen.wait(timeout=15) == 0
    finally:
        for client in clients:
            client.stop()
