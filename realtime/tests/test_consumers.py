"""The `/ws/` protocol of docs/websocket.md, through the whole ASGI stack: Origin check, auth, consumer and pump.

Each test runs in its own event loop (`asynctest`); the pump and the
services share the test's database connection, so the database must be
transactional: the pump reads committed rows only.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import functools
import io
import itertools
import json
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client

from accounts.models import User
from chatproject.asgi import application
from conftest import PASSWORD
from core.cache import close_async_clients
from core.text import has_visible_character
from messaging import services
from messaging.models import Message
from messaging.payloads import MessagePayload
from messaging.services import message_post
from realtime import consumers, delivery, presence
from rooms import services as room_services
from rooms.events import Event
from rooms.models import Membership
from rooms.payloads import RoomPayload

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://127.0.0.1:8000")
# The server as the page at ORIGIN reaches it: every HTTP/1.1 client sends Host.
HOST = (b"host", b"127.0.0.1:8000")
TIMEOUT = 5.0
MESSAGE_FIELDS = MessagePayload.__required_keys__
ROOM_FIELDS = RoomPayload.__required_keys__
ERROR_CODES = {"bad_request", "unknown_type", "not_found", "forbidden", "rate_limited", "invalid"}


# --- Harness -------------------------------------------------------------------------------


class Closed(AssertionError):
    """The server closed the socket while a frame was expected."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"socket closed with code {code}")
        self.code = code


class Socket:
    """A WebsocketCommunicator that speaks JSON frames and never cancels the app on a timeout."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.communicator = communicator
        self.hello: dict[str, Any] = {}
        self.disconnected = False

    async def _output(self, within: float) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(self.communicator.output_queue.get(), within)
        except TimeoutError:
            if self.communicator.future.done():
                self.communicator.future.result()  # the consumer's own exception, if any
            raise AssertionError(f"nothing arrived within {within} s") from None

    async def recv(self, within: float = TIMEOUT, *, skip: tuple[str, ...] = ("presence",)) -> dict[str, Any]:
        """Return the next frame, skipping `skip` types (presence comes and goes); raise Closed on a close."""
        while True:
            output = await self._output(within)
            if output["type"] == "websocket.close":
                raise Closed(output.get("code"))
            frame = json.loads(output["text"])
            if frame["type"] not in skip:
                return frame

    async def until(self, predicate: Callable[[dict[str, Any]], bool], within: float = TIMEOUT) -> list[dict[str, Any]]:
        """Return every frame up to and including the first one that matches."""
        frames = []
        while True:
            frames.append(await self.recv(within))
            if predicate(frames[-1]):
                return frames

    async def until_message(self, body: str) -> list[dict[str, Any]]:
        """Return the frames up to and including the message.new of `body`."""
        return await self.until(lambda frame: frame["type"] == "message.new" and frame["message"]["body"] == body)

    async def close_code(self, within: float = TIMEOUT) -> tuple[int | None, list[dict[str, Any]]]:
        """Wait for the server to close the socket; return the code and the frames before it."""
        frames = []
        while True:
            output = await self._output(within)
            if output["type"] == "websocket.close":
                return output.get("code"), frames
            frames.append(json.loads(output["text"]))

    async def nothing(self, wait: float = 0.3, *, skip: tuple[str, ...] = ("presence",)) -> None:
        """Assert that no frame (other than `skip` types) arrives within `wait` seconds."""
        try:
            frame = await self.recv(wait, skip=skip)
        except Closed:
            raise
        except AssertionError:
            return
        raise AssertionError(f"unexpected frame {frame}")

    async def send(self, frame: Any) -> None:
        await self.communicator.send_to(text_data=json.dumps(frame))

    async def send_text(self, text: str) -> None:
        # send_input, not send_to: send_to refuses an empty frame.
        await self.communicator.send_input({"type": "websocket.receive", "text": text})

    async def send_bytes(self, data: bytes) -> None:
        await self.communicator.send_input({"type": "websocket.receive", "bytes": data})

    async def pong(self) -> None:
        """Ping and get exactly a pong back: the socket is open and answering."""
        await self.send({"type": "ping"})
        reply = await self.recv()
        assert reply == {"type": "pong"}, reply

    async def error(self, frame: Any = None, *, text: str | None = None, data: bytes | None = None) -> dict[str, Any]:
        """Send a frame (or raw text, or bytes) and return the error frame it gets."""
        if data is not None:
            await self.send_bytes(data)
        elif text is not None:
            await self.send_text(text)
        else:
            await self.send(frame)
        reply = await self.recv()
        assert reply["type"] == "error", reply
        assert reply["code"] in ERROR_CODES, reply
        assert isinstance(reply["detail"], str) and reply["detail"], reply
        return reply

    async def disconnect(self) -> None:
        if not self.disconnected:
            self.disconnected = True
            await self.communicator.disconnect(timeout=TIMEOUT)


_open_sockets: list[Socket] = []


def asynctest(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async test in a fresh event loop, then disconnect every socket it opened.

    async_to_sync runs thread-sensitive database calls in the test's own
    thread, so services, the pump and the test share one database connection.
    """

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        async def main() -> None:
            try:
                await test(*args, **kwargs)
            finally:
                while _open_sockets:
                    await _open_sockets.pop().disconnect()
                await _release_connections()

        async_to_sync(main)()

    return run


async def _release_connections() -> None:
    """Stop the pump and close this loop's Redis connections (the loop is about to end)."""
    await delivery.pump.stop()
    layer = get_channel_layer()
    if layer is not None:
        await layer.flush()  # this test's groups and channels, under its own prefix
    backend = presence._backend
    if isinstance(backend, presence._RedisPresence):
        for client in backend.clients.values():
            await client.aclose()
    await close_async_clients()  # the sending budget's counters (core.ratelimit)


@pytest.fixture(autouse=True)
def _fresh_realtime_state(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    """Give every test a pump that has not seen earlier tests' events, and presence of its own."""
    monkeypatch.setattr(delivery, "pump", delivery.EventPump())
    # The Redis presence backend keeps one client per event loop; each test has a new loop.
    monkeypatch.setattr(presence, "_backend", None)
    # Presence keys and channel-layer groups in Redis outlive a test and are
    # shared with other test runs, where the same ids name other users and rooms.
    prefix = f"chat-test-{uuid.uuid4().hex[:12]}"
    settings.CHANNEL_PREFIX = prefix
    layers = copy.deepcopy(settings.CHANNEL_LAYERS)
    if "CONFIG" in layers["default"] and "prefix" in layers["default"]["CONFIG"]:
        layers["default"]["CONFIG"]["prefix"] = prefix
    # Channels makes a new layer when this setting changes: no groups left over from earlier tests.
    settings.CHANNEL_LAYERS = layers


@pytest.fixture
def no_rate_limit(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    """Lift the frame rate limit and the user's sending budget, for tests that send many frames on purpose."""
    monkeypatch.setattr(consumers, "RATE_BURST", 1e9)
    monkeypatch.setattr(consumers, "RATE_PER_SECOND", 1e9)
    settings.USER_SEND_RATE = "1000000/s"


async def handshake(headers: list[tuple[bytes, bytes]], *, path: str = "/ws/") -> tuple[Socket, bool]:
    """Start a handshake with these headers (and HOST unless given); return the socket and whether it was accepted."""
    if not any(name == b"host" for name, _ in headers):
        headers = [HOST, *headers]
    socket = Socket(WebsocketCommunicator(application, path, headers=headers))
    _open_sockets.append(socket)
    connected, _ = await socket.communicator.connect(timeout=TIMEOUT)
    return socket, connected


def access_token(user: Any, *, seconds: float | None = None) -> bytes:
    """Mint a JWT access token for `user`, living only `seconds` if given."""
    from rest_framework_simplejwt.tokens import AccessToken

    token = AccessToken.for_user(user)
    if seconds is not None:
        token.set_exp(lifetime=timedelta(seconds=seconds))
    return str(token).encode()


def bearer(user: Any, *, seconds: float | None = None) -> tuple[bytes, bytes]:
    return (b"authorization", b"Bearer " + access_token(user, seconds=seconds))


def session_cookie(user: Any) -> tuple[bytes, bytes]:
    """Log in through Django's login and return the session cookie header."""
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


async def connect(user: Any, *, query: str = "", headers: list[tuple[bytes, bytes]] | None = None) -> Socket:
    """Open an accepted socket as `user` (Bearer token, allowed Origin) and read its hello."""
    socket, connected = await handshake(headers or [bearer(user), ORIGIN], path=f"/ws/{query}")
    assert connected, "handshake refused"
    socket.hello = await socket.recv()
    assert socket.hello["type"] == "hello", socket.hello
    return socket


_in_test_thread = sync_to_async(lambda function, args, kwargs: function(*args, **kwargs), thread_sensitive=True)


async def call(function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Run a sync (database) function off the event loop, in the test's thread."""
    return await _in_test_thread(function, args, kwargs)


class Clock:
    """Stands in for the consumer's `time` module: the real clocks moved on by `ahead` seconds, or stopped."""

    def __init__(self, ahead: float = 0.0, *, stopped: bool = False) -> None:
        self.ahead = ahead
        self.stopped_at = time.monotonic() if stopped else None

    def time(self) -> float:
        return time.time() + self.ahead

    def monotonic(self) -> float:
        return (time.monotonic() if self.stopped_at is None else self.stopped_at) + self.ahead

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


async def say(room: Any, author: Any, body: str, **extra: Any) -> Message:
    """Post a message through the service, as REST and the consumer do."""
    message, _ = await call(message_post, room=room, author=author, body=body, **extra)
    return message


async def rest(client_for: Any, user: Any, method: str, url: str, data: Any = None) -> tuple[int, Any]:
    """Call the REST API as `user`; return the status and the decoded body."""

    def request() -> tuple[int, Any]:
        client = client_for(user)
        response = getattr(client, method)(f"/api/v1/{url}", data, format="json")
        return response.status_code, (response.json() if response.content else None)

    return await call(request)


def newest_event_id() -> int:
    return Event.objects.order_by("-id").values_list("id", flat=True).first() or 0


def message_count() -> int:
    return Message.objects.count()


def event_ids(frames: list[dict[str, Any]]) -> list[int]:
    return [frame["event_id"] for frame in frames if "event_id" in frame]


def strictly_increasing(ids: list[int]) -> bool:
    return all(earlier < later for earlier, later in itertools.pairwise(ids))


# --- Handshake ------------------------------------------------------------------------------


def _deactivate_quietly(user: Any) -> None:
    User.objects.filter(pk=user.pk).update(is_active=False)


@asynctest
async def test_handshake_without_credentials_is_refused() -> None:
    _, connected = await handshake([ORIGIN])
    assert connected is False


@asynctest
async def test_handshake_with_a_malformed_authorization_header_is_refused(alice) -> None:
    for authorization in (b"Bearer not-a-jwt", b"Bearer ", b"Bearer", b"Basic YWxpY2U6c2VjcmV0", b"Token abc"):
        _, connected = await handshake([(b"authorization", authorization), ORIGIN])
        assert connected is False, authorization


@asynctest
async def test_handshake_with_an_expired_token_is_refused(alice) -> None:
    _, connected = await handshake([bearer(alice, seconds=-30), ORIGIN])
    assert connected is False


@asynctest
async def test_handshake_with_a_token_signed_by_another_key_is_refused(alice) -> None:
    import jwt

    forged = jwt.encode(
        {"token_type": "access", "user_id": str(alice.pk), "exp": 2**31, "jti": "x"},
        "a-different-signing-key-of-enough-length",
    )
    _, connected = await handshake([(b"authorization", b"Bearer " + forged.encode()), ORIGIN])
    assert connected is False


@asynctest
async def test_handshake_with_a_refresh_token_is_refused(alice) -> None:
    from rest_framework_simplejwt.tokens import RefreshToken

    refresh = await call(lambda: str(RefreshToken.for_user(alice)))
    _, connected = await handshake([(b"authorization", b"Bearer " + refresh.encode()), ORIGIN])
    assert connected is False


@asynctest
async def test_handshake_with_a_bad_token_is_refused_even_with_a_valid_session_cookie(alice) -> None:
    cookie = await call(session_cookie, alice)
    _, connected = await handshake([(b"authorization", b"Bearer not-a-jwt"), cookie, ORIGIN])
    assert connected is False


@asynctest
async def test_handshake_for_an_inactive_user_with_a_token_is_refused(alice) -> None:
    header = bearer(alice)
    await call(_deactivate_quietly, alice)
    _, connected = await handshake([header, ORIGIN])
    assert connected is False


@asynctest
async def test_handshake_for_an_inactive_user_with_a_session_is_refused(alice) -> None:
    cookie = await call(session_cookie, alice)
    await call(_deactivate_quietly, alice)
    _, connected = await handshake([cookie, ORIGIN])
    assert connected is False


@asynctest
async def test_handshake_for_a_deleted_user_is_refused(mallory) -> None:
    header = bearer(mallory)
    await call(lambda: User.objects.filter(pk=mallory.pk).delete())
    _, connected = await handshake([header, ORIGIN])
    assert connected is False


FOREIGN_ORIGINS = [
    b"http://evil.example",
    b"https://127.0.0.1.evil.example",
    b"null",
    b"file://",
    b"http://127.0.0.1.nip.io",
]


@asynctest
async def test_handshake_from_a_foreign_origin_is_refused_even_with_valid_credentials(alice) -> None:
    cookie = await call(session_cookie, alice)
    for origin in FOREIGN_ORIGINS:
        for credentials in (bearer(alice), cookie):
            _, connected = await handshake([credentials, (b"origin", origin)])
            assert connected is False, origin


@asynctest
async def test_handshake_with_a_session_cookie_is_accepted(alice) -> None:
    cookie = await call(session_cookie, alice)
    socket = await connect(alice, headers=[cookie, ORIGIN])
    assert socket.hello["user"] == {"id": alice.pk, "username": "alice", "display_name": "Alice"}
    await socket.pong()


@asynctest
async def test_handshake_with_a_bearer_token_and_no_origin_is_accepted(alice) -> None:
    socket = await connect(alice, headers=[bearer(alice)])
    assert socket.hello["user"]["id"] == alice.pk
    await socket.pong()


@asynctest
async def test_hello_names_the_user_and_the_newest_committed_event(alice, lobby) -> None:
    socket = await connect(alice)
    assert socket.hello == {
        "type": "hello",
        "user": {"id": alice.pk, "username": "alice", "display_name": "Alice"},
        "last_event_id": await call(newest_event_id),
    }
    # Without a cursor, live events follow hello at once: no resume.done.
    message = await say(lobby, alice, "first")
    frame = await socket.recv()
    assert frame["type"] == "message.new"
    assert frame["message"]["id"] == message.pk
    assert frame["event_id"] > socket.hello["last_event_id"]


def newest_event_of(room: Any) -> int:
    return Event.objects.filter(room=room).order_by("-id").values_list("id", flat=True).first() or 0


@asynctest
async def test_hello_tells_the_newest_event_the_user_may_see_not_the_newest_of_all(
    alice, bob, mallory, lobby, secret
) -> None:
    await say(lobby, alice, "seen by bob")
    await say(secret, alice, "not for bob")
    await say(secret, alice, "nor for mallory")
    bob_socket = await connect(bob)
    mallory_socket = await connect(mallory)
    # Activity in rooms they are not in must not show in the ids they are told.
    assert bob_socket.hello["last_event_id"] == await call(newest_event_of, lobby)
    assert mallory_socket.hello["last_event_id"] == 0
    assert await call(newest_event_id) > bob_socket.hello["last_event_id"]


@asynctest
async def test_hello_counts_the_events_about_the_user(alice, bob, carol, lobby) -> None:
    message = await say(lobby, alice, "read me")
    await call(services.read_mark, user=bob, room=lobby, message_id=message.pk)
    read_event = await call(newest_event_id)
    await call(services.read_mark, user=carol, room=lobby, message_id=message.pk)  # carol's, private to her
    assert (await connect(bob)).hello["last_event_id"] == read_event

    await call(room_services.member_kick, actor=alice, room=lobby, user_id=bob.pk)
    kick_event = await call(newest_event_id)
    await say(lobby, alice, "after bob left")
    assert (await connect(bob)).hello["last_event_id"] == kick_event


@asynctest
async def test_resume_from_the_id_told_misses_nothing_and_doubles_nothing_around_unseen_activity(
    alice, bob, carol, lobby, secret
) -> None:
    socket = await connect(bob)
    told = socket.hello["last_event_id"]
    await socket.disconnect()
    for n in range(4):
        await say(secret, alice, f"unseen {n}")
        await say(lobby, carol, f"missed {n}")
    await say(secret, alice, "unseen last")

    socket = await connect(bob, query=f"?last_event_id={told}")
    replay = await socket.until(lambda frame: frame["type"] == "resume.done")
    assert [frame["message"]["body"] for frame in replay[:-1]] == [f"missed {n}" for n in range(4)]
    assert replay[-1]["last_event_id"] == replay[-2]["event_id"] == socket.hello["last_event_id"]
    told = replay[-1]["last_event_id"]
    await socket.disconnect()

    # Only unseen activity since: nothing to replay, and the id told stays put.
    await say(secret, alice, "unseen again")
    socket = await connect(bob, query=f"?last_event_id={told}")
    assert await socket.recv() == {"type": "resume.done", "last_event_id": told}
    await socket.disconnect()

    # Traffic in both rooms while the socket replays and hands over to live delivery.
    for n in range(5):
        await say(lobby, carol, f"before {n}")
    socket = await connect(bob, query=f"?last_event_id={told}")

    async def traffic() -> None:
        for n in range(20):
            await say(secret, alice, f"unseen during {n}")
            await say(lobby, carol, f"during {n}")
            await asyncio.sleep(0)

    writer = asyncio.create_task(traffic())
    frames = await socket.until_message("during 19")
    await writer
    bodies = [frame["message"]["body"] for frame in frames if frame["type"] == "message.new"]
    assert bodies == [f"before {n}" for n in range(5)] + [f"during {n}" for n in range(20)]
    assert [frame["type"] for frame in frames].count("resume.done") == 1
    assert strictly_increasing(event_ids(frames))


@asynctest
async def test_resume_from_a_cursor_above_what_the_user_may_see_requires_a_resync(
    alice, mallory, lobby, secret
) -> None:
    await say(secret, alice, "private activity")
    # The global newest id is no cursor of mallory's: guessing it tells her nothing.
    socket = await connect(mallory, query=f"?last_event_id={await call(newest_event_id)}")
    assert socket.hello["last_event_id"] == 0
    assert await socket.recv() == {"type": "resync.required"}


@asynctest
async def test_hello_says_zero_when_no_event_exists_yet(mallory) -> None:
    socket = await connect(mallory)
    assert socket.hello["last_event_id"] == 0


# --- Client frames: message.send --------------------------------------------------------------


@asynctest
async def test_message_send_reaches_the_senders_and_other_members_sockets_as_message_new(alice, bob, lobby) -> None:
    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    await alice_socket.send({"type": "message.send", "room": lobby.pk, "body": "hi **there**", "client_id": "c-1"})
    mine = await alice_socket.recv()
    theirs = await bob_socket.recv()
    assert mine == theirs
    assert mine["type"] == "message.new"
    assert mine["room"] == lobby.pk
    assert mine["event_id"] > alice_socket.hello["last_event_id"]
    message = mine["message"]
    assert set(message) >= MESSAGE_FIELDS
    assert message["client_id"] == "c-1"
    assert message["body"] == "hi **there**"
    assert "<strong>there</strong>" in message["html"]
    assert message["author"] == {"id": alice.pk, "username": "alice", "display_name": "Alice"}
    assert message["room"] == lobby.pk
    assert message["deleted"] is False
    assert message["reactions"] == []
    stored = await call(lambda: list(Message.objects.values_list("id", "client_id", "author_id")))
    assert stored == [(message["id"], "c-1", alice.pk)]


@asynctest
async def test_message_send_again_with_the_same_client_id_writes_no_second_message(alice, lobby) -> None:
    socket = await connect(alice)
    frame = {"type": "message.send", "room": lobby.pk, "body": "once", "client_id": "retry-me"}
    await socket.send(frame)
    first = await socket.recv()
    await socket.send(frame)
    await socket.send({**frame, "body": "a different body, same id"})
    # A later message is the barrier: had the retries made events, they would arrive before it.
    await socket.send({**frame, "client_id": "next", "body": "next"})
    frames = await socket.until_message("next")
    assert [frame["type"] for frame in frames] == ["message.new"], frames
    assert await call(lambda: list(Message.objects.order_by("id").values_list("body", flat=True))) == ["once", "next"]
    assert first["message"]["client_id"] == "retry-me"


@asynctest
async def test_message_send_with_a_parent_makes_a_reply(alice, lobby) -> None:
    parent = await say(lobby, alice, "question")
    socket = await connect(alice)
    await socket.send(
        {"type": "message.send", "room": lobby.pk, "body": "answer", "client_id": "r", "parent": parent.pk}
    )
    frame = await socket.recv()
    assert frame["message"]["parent"] == parent.pk


SEND = {"type": "message.send", "body": "hello", "client_id": "c-9"}


async def _refused_without_a_trace(socket: Socket, frame: Any = None, **raw: Any) -> dict[str, Any]:
    """Send a frame that must be refused; check the socket stays open and nothing was written."""
    reply = await socket.error(frame, **raw)
    await socket.pong()
    assert await call(message_count) == 0
    return reply


@asynctest
async def test_message_send_to_a_private_room_of_others_is_not_found(alice, mallory, secret) -> None:
    socket = await connect(mallory)
    reply = await _refused_without_a_trace(socket, {**SEND, "room": secret.pk})
    assert reply["code"] == "not_found"
    assert reply["client_id"] == "c-9"


@asynctest
async def test_message_send_to_a_room_that_does_not_exist_is_not_found(mallory) -> None:
    socket = await connect(mallory)
    for room in (999_999_999, 2**63 - 1):
        reply = await _refused_without_a_trace(socket, {**SEND, "room": room})
        assert reply["code"] == "not_found"


@asynctest
async def test_message_send_to_a_public_room_by_a_non_member_is_forbidden(mallory, lobby) -> None:
    socket = await connect(mallory)
    reply = await _refused_without_a_trace(socket, {**SEND, "room": lobby.pk})
    assert reply["code"] == "forbidden"
    assert reply["client_id"] == "c-9"


@asynctest
async def test_message_send_with_an_empty_or_bad_body_is_refused_with_client_id_echoed(
    no_rate_limit, alice, lobby
) -> None:
    socket = await connect(alice)
    for body in ["", "   \n\t ", "x" * 4001, "nul \x00 inside", 12, None, ["hello"]]:
        reply = await _refused_without_a_trace(socket, {**SEND, "room": lobby.pk, "body": body})
        assert reply["client_id"] == "c-9", reply
        # Text that is not a message is invalid; a body that is not text is a malformed frame.
        assert reply["code"] == ("invalid" if isinstance(body, str) else "bad_request"), (body, reply)


@asynctest
async def test_message_send_with_a_lone_surrogate_in_the_body_is_invalid(alice, lobby) -> None:
    socket = await connect(alice)
    text = json.dumps({"type": "message.send", "room": lobby.pk, "body": "half \ud83d an emoji", "client_id": "s"})
    reply = await _refused_without_a_trace(socket, text=text)
    assert reply["code"] == "invalid"
    assert reply["client_id"] == "s"


@asynctest
async def test_message_send_with_a_parent_from_another_room_is_invalid(alice, lobby, secret) -> None:
    elsewhere = await say(secret, alice, "elsewhere")
    socket = await connect(alice)
    reply = await socket.error({**SEND, "room": lobby.pk, "parent": elsewhere.pk})
    assert reply["code"] == "invalid"
    assert await call(message_count) == 1


MALFORMED_FRAMES: list[dict[str, Any]] = [
    {"type": "message.send"},
    {"type": "message.send", "body": "hi", "client_id": "c"},
    {"type": "message.send", "room": "LOBBY", "body": "hi", "client_id": "c"},
    {"type": "message.send", "room": "1", "body": "hi", "client_id": "c"},
    {"type": "message.send", "room": 1.0, "body": "hi", "client_id": "c"},
    {"type": "message.send", "room": True, "body": "hi", "client_id": "c"},
    {"type": "message.send", "room": -1, "body": "hi", "client_id": "c"},
    {"type": "message.send", "room": 0, "body": "hi", "client_id": "c"},
    {"type": "message.send", "room": 2**64, "body": "hi", "client_id": "c"},
    {"type": "message.send", "room": [1], "body": "hi", "client_id": "c"},
    {"type": "message.send", "room": "ROOM", "client_id": "c"},
    {"type": "message.send", "room": "ROOM", "body": "hi"},
    {"type": "message.send", "room": "ROOM", "body": "hi", "client_id": 7},
    {"type": "message.send", "room": "ROOM", "body": "hi", "client_id": "c", "parent": "1"},
    {"type": "message.send", "room": "ROOM", "body": "hi", "client_id": "c", "parent": -5},
    {"type": "message.send", "room": "ROOM", "body": "hi", "client_id": "c", "parent": {}},
    {"type": "read", "room": "ROOM"},
    {"type": "read", "room": "ROOM", "message_id": "1"},
    {"type": "read", "message_id": 1},
    {"type": "typing"},
    {"type": "typing", "room": None},
    {"type": "typing", "room": "ROOM "},
    {},
    {"type": None},
    {"type": 5},
    {"type": ["ping"]},
    {"room": "ROOM", "body": "hi"},
]


@asynctest
async def test_frame_with_missing_fields_or_wrong_types_is_a_bad_request(no_rate_limit, alice, lobby) -> None:
    socket = await connect(alice)
    for template in MALFORMED_FRAMES:
        frame = {key: (lobby.pk if value == "ROOM" else value) for key, value in template.items()}
        reply = await _refused_without_a_trace(socket, frame)
        assert reply["code"] == "bad_request", (frame, reply)


@asynctest
async def test_frame_of_an_unknown_type_is_refused_as_unknown_type(no_rate_limit, alice) -> None:
    socket = await connect(alice)
    for kind in ["message.delete", "PING", "", "x" * 1000, "typing ", "hello", "message.new"]:
        reply = await _refused_without_a_trace(socket, {"type": kind, "client_id": "u"})
        assert reply["code"] == "unknown_type", (kind, reply)
        assert reply["client_id"] == "u"
        assert len(reply["detail"]) < 200


NOT_JSON_OBJECTS = [
    "{",
    "not json",
    "",
    "[]",
    '[{"type": "ping"}]',
    '"ping"',
    "42",
    "null",
    "true",
    '{"type": "ping"} x',
]


@asynctest
async def test_frame_that_is_not_a_json_object_is_a_bad_request(no_rate_limit, alice) -> None:
    socket = await connect(alice)
    for text in NOT_JSON_OBJECTS:
        reply = await _refused_without_a_trace(socket, text=text)
        assert reply["code"] == "bad_request", (text, reply)


@asynctest
async def test_binary_frame_is_a_bad_request(no_rate_limit, alice) -> None:
    socket = await connect(alice)
    for data in (b'{"type": "ping"}', b"\xff\xfe\x00", b""):
        reply = await _refused_without_a_trace(socket, data=data)
        assert reply["code"] == "bad_request"


@asynctest
async def test_ping_gets_pong(alice) -> None:
    socket = await connect(alice)
    await socket.pong()
    await socket.send({"type": "ping", "extra": {"ignored": True}})
    assert await socket.recv() == {"type": "pong"}


# --- Frame size and rate limits ------------------------------------------------------------------


@asynctest
async def test_frame_of_exactly_64_kib_is_read(alice) -> None:
    socket = await connect(alice)
    head, tail = '{"type": "ping", "pad": "', '"}'
    text = head + "x" * (consumers.MAX_FRAME_BYTES - len(head) - len(tail)) + tail
    assert len(text.encode()) == 64 * 1024
    await socket.send_text(text)
    assert await socket.recv() == {"type": "pong"}


@asynctest
async def test_frame_over_64_kib_closes_the_socket_with_1009(alice) -> None:
    socket = await connect(alice)
    head, tail = '{"type": "ping", "pad": "', '"}'
    await socket.send_text(head + "x" * (64 * 1024 - len(head) - len(tail) + 1) + tail)
    code, frames = await socket.close_code()
    assert code == 1009
    assert frames == []


@asynctest
async def test_multibyte_frame_over_64_kib_in_utf8_closes_the_socket_with_1009(alice) -> None:
    socket = await connect(alice)
    # 30,000 characters, but 90,000 bytes on the wire.
    await socket.send_text('{"type": "ping", "pad": "' + "€" * 30_000 + '"}')
    code, _ = await socket.close_code()
    assert code == 1009


@asynctest
async def test_binary_frame_over_64_kib_closes_the_socket_with_1009(alice) -> None:
    socket = await connect(alice)
    await socket.send_bytes(b"x" * (64 * 1024 + 1))
    code, _ = await socket.close_code()
    assert code == 1009


@asynctest
async def test_burst_beyond_twenty_frames_is_rate_limited_with_retry_after(alice, monkeypatch) -> None:
    # The consumer's clock stands still unless the test moves it: the bucket refills only when told.
    clock = Clock(stopped=True)
    monkeypatch.setattr(consumers, "time", clock)
    socket = await connect(alice)
    # 40 at once: more than the burst even if the bucket refills while they are read.
    for _ in range(40):
        await socket.send({"type": "ping"})
    replies = [await socket.recv() for _ in range(40)]
    pongs = [reply for reply in replies if reply["type"] == "pong"]
    limited = [reply for reply in replies if reply["type"] == "error"]
    assert 20 <= len(pongs) < 40
    assert len(pongs) + len(limited) == 40
    assert replies[:20] == [{"type": "pong"}] * 20
    for reply in limited:
        assert reply["code"] == "rate_limited"
        assert isinstance(reply["retry_after"], int | float) and 0 < reply["retry_after"] <= 1
    assert (await socket.error({"type": "ping"}))["code"] == "rate_limited"
    # Waiting as told (on the consumer's clock, plus a hair for rounding) makes room again.
    clock.ahead += max(reply["retry_after"] for reply in limited) + 0.01
    await socket.pong()


@asynctest
async def test_rate_limited_message_send_echoes_client_id_and_writes_nothing(alice, lobby) -> None:
    socket = await connect(alice)
    for _ in range(20):
        await socket.send({"type": "ping"})
    await socket.send({**SEND, "room": lobby.pk, "client_id": "too-fast"})
    frames = await socket.until(lambda frame: frame["type"] == "error")
    assert frames[-1]["code"] == "rate_limited"
    assert frames[-1]["client_id"] == "too-fast"
    assert await call(message_count) == 0


@asynctest
async def test_sustained_flooding_closes_the_socket_with_4008(alice) -> None:
    socket = await connect(alice)
    for _ in range(200):
        await socket.send({"type": "ping"})
    code, frames = await socket.close_code()
    assert code == 4008
    assert {frame.get("code") for frame in frames if frame["type"] == "error"} == {"rate_limited"}


@asynctest
async def test_frames_queued_behind_a_4008_close_are_not_answered(alice) -> None:
    socket = await connect(alice)
    for _ in range(200):
        await socket.send({"type": "ping"})
    code, _ = await socket.close_code()
    assert code == 4008
    await socket.nothing(0.5)


@asynctest
async def test_frames_queued_behind_a_1009_close_are_not_answered(alice) -> None:
    socket = await connect(alice)
    await socket.send_text("x" * (64 * 1024 + 1))
    for _ in range(5):
        await socket.send({"type": "ping"})
    code, frames = await socket.close_code()
    assert (code, frames) == (1009, [])
    await socket.nothing(0.5)


# --- Client frames: read and typing -----------------------------------------------------------------


@asynctest
async def test_read_frame_moves_the_marker_and_reaches_the_users_other_sockets(alice, bob, lobby) -> None:
    message = await say(lobby, bob, "read me")
    phone = await connect(alice)
    laptop = await connect(alice)
    bob_socket = await connect(bob)
    await phone.send({"type": "read", "room": lobby.pk, "message_id": message.pk})
    frame = await laptop.recv()
    assert frame["type"] == "read"
    assert (frame["room"], frame["message_id"]) == (lobby.pk, message.pk)
    assert frame["event_id"] > laptop.hello["last_event_id"]
    assert await phone.recv() == frame
    marker = await call(lambda: Membership.objects.get(room=lobby, user=alice).last_read_message_id)
    assert marker == message.pk
    # The marker is private: bob's next frame is the barrier message, not alice's read.
    await say(lobby, alice, "barrier")
    assert [frame["type"] for frame in await bob_socket.until_message("barrier")] == ["message.new"]


@asynctest
async def test_a_thread_read_reaches_only_the_readers_own_sockets(alice, bob, lobby) -> None:
    from messaging import threads

    root = await say(lobby, alice, "root")
    reply = await say(lobby, bob, "reply", parent=root.pk)
    laptop = await connect(alice)
    bob_socket = await connect(bob)
    await call(threads.thread_read, user=alice, root=root, message_id=reply.pk)
    frame = await laptop.recv()
    assert (frame["type"], frame["room"], frame["root"], frame["message_id"]) == (
        "thread.read",
        lobby.pk,
        root.pk,
        reply.pk,
    )
    await say(lobby, alice, "barrier")
    assert [frame["type"] for frame in await bob_socket.until_message("barrier")] == ["message.new"]


@asynctest
async def test_a_broadcast_reply_sent_on_the_socket_carries_the_roots_new_summary(alice, bob, lobby) -> None:
    root = await say(lobby, alice, "root")
    socket = await connect(bob)
    await socket.send(
        {
            "type": "message.send",
            "room": lobby.pk,
            "body": "also here",
            "client_id": "b",
            "parent": root.pk,
            "broadcast": True,
        }
    )
    frame = await socket.recv()
    assert (frame["message"]["parent"], frame["message"]["broadcast"]) == (root.pk, True)
    assert (frame["thread"]["root"], frame["thread"]["reply_count"], frame["thread"]["last_repliers"]) == (
        root.pk,
        1,
        [bob.pk],
    )
    reply = await socket.error({**SEND, "room": lobby.pk, "parent": root.pk, "broadcast": "yes"})
    assert reply["code"] == "bad_request"


@asynctest
async def test_read_frame_never_moves_the_marker_back(alice, bob, lobby) -> None:
    older = await say(lobby, bob, "older")
    newer = await say(lobby, bob, "newer")
    await call(services.read_mark, user=alice, room=lobby, message_id=newer.pk)
    socket = await connect(alice)
    await socket.send({"type": "read", "room": lobby.pk, "message_id": older.pk})
    await say(lobby, bob, "barrier")
    assert [frame["type"] for frame in await socket.until_message("barrier")] == ["message.new"]
    marker = await call(lambda: Membership.objects.get(room=lobby, user=alice).last_read_message_id)
    assert marker == newer.pk


@asynctest
async def test_read_frame_for_a_message_of_another_room_is_invalid(alice, lobby, secret) -> None:
    elsewhere = await say(secret, alice, "elsewhere")
    socket = await connect(alice)
    reply = await socket.error({"type": "read", "room": lobby.pk, "message_id": elsewhere.pk})
    assert reply["code"] == "invalid"


@asynctest
async def test_read_frame_for_a_room_of_others_is_refused_like_rest(alice, mallory, lobby, secret) -> None:
    message = await say(secret, alice, "hidden")
    socket = await connect(mallory)
    reply = await socket.error({"type": "read", "room": secret.pk, "message_id": message.pk})
    assert reply["code"] == "not_found"
    reply = await socket.error({"type": "read", "room": lobby.pk, "message_id": message.pk})
    assert reply["code"] == "forbidden"
    reply = await socket.error({"type": "read", "room": 999_999_999, "message_id": 1})
    assert reply["code"] == "not_found"


@asynctest
async def test_typing_reaches_other_members_but_not_the_sender_or_non_members(
    alice, bob, carol, mallory, lobby
) -> None:
    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    carol_socket = await connect(carol)
    mallory_socket = await connect(mallory)
    await alice_socket.send({"type": "typing", "room": lobby.pk})
    expected = {
        "type": "typing",
        "room": lobby.pk,
        "user": {"id": alice.pk, "username": "alice", "display_name": "Alice"},
    }
    assert await bob_socket.recv() == expected
    assert await carol_socket.recv() == expected
    await alice_socket.nothing()
    await mallory_socket.nothing(0.1)


@asynctest
async def test_typing_in_a_room_the_user_is_not_in_is_refused_and_reaches_nobody(
    alice, bob, mallory, lobby, secret
) -> None:
    alice_socket = await connect(alice)
    mallory_socket = await connect(mallory)
    for room in (lobby.pk, secret.pk):
        reply = await mallory_socket.error({"type": "typing", "room": room})
        assert reply["code"] == "not_found"
    await alice_socket.nothing()


# --- REST actions reach sockets ------------------------------------------------------------------------


@asynctest
async def test_message_posted_over_rest_reaches_websocket_subscribers(client_for, alice, bob, lobby) -> None:
    bob_socket = await connect(bob)
    status, body = await rest(
        client_for, alice, "post", f"rooms/{lobby.pk}/messages/", {"body": "via rest", "client_id": "r-1"}
    )
    assert status == 201
    frame = await bob_socket.recv()
    assert frame["type"] == "message.new"
    assert frame["room"] == lobby.pk
    assert frame["message"] == body


@asynctest
async def test_message_edited_over_rest_reaches_sockets_as_the_whole_message(client_for, alice, bob, lobby) -> None:
    message = await say(lobby, alice, "draft")
    bob_socket = await connect(bob)
    status, _ = await rest(client_for, alice, "patch", f"messages/{message.pk}/", {"body": "final *words*"})
    assert status == 200
    frame = await bob_socket.recv()
    assert frame["type"] == "message.updated"
    assert frame["room"] == lobby.pk
    _, current = await rest(client_for, bob, "get", f"messages/{message.pk}/")
    assert frame["message"] == current
    assert frame["message"]["body"] == "final *words*"
    assert frame["message"]["edited_at"] is not None


@asynctest
async def test_message_deleted_over_rest_reaches_sockets_as_a_tombstone(client_for, alice, bob, lobby) -> None:
    message = await say(lobby, alice, "regret")
    bob_socket = await connect(bob)
    status, _ = await rest(client_for, alice, "delete", f"messages/{message.pk}/")
    assert status == 204
    frame = await bob_socket.recv()
    assert frame["type"] == "message.updated"
    assert set(frame["message"]) >= MESSAGE_FIELDS
    assert frame["message"]["id"] == message.pk
    assert (frame["message"]["deleted"], frame["message"]["body"], frame["message"]["html"]) == (True, "", "")


@asynctest
async def test_reaction_over_rest_reaches_sockets_as_the_whole_message(client_for, alice, bob, lobby) -> None:
    message = await say(lobby, alice, "react to me")
    alice_socket = await connect(alice)
    status, _ = await rest(client_for, bob, "post", f"messages/{message.pk}/reactions/", {"emoji": "👍"})
    assert status == 201
    added = await alice_socket.recv()
    assert added["type"] == "message.updated"
    assert added["message"]["reactions"] == [{"emoji": "👍", "count": 1, "users": [bob.pk]}]
    _, current = await rest(client_for, alice, "get", f"messages/{message.pk}/")
    assert added["message"] == current
    status, _ = await rest(client_for, bob, "delete", f"messages/{message.pk}/reactions/%F0%9F%91%8D/")
    assert status == 204
    removed = await alice_socket.recv()
    assert removed["type"] == "message.updated"
    assert removed["message"]["reactions"] == []
    assert removed["event_id"] > added["event_id"]


@asynctest
async def test_room_renamed_over_rest_reaches_members_as_room_updated_with_their_own_role(
    client_for, alice, bob, lobby
) -> None:
    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    status, _ = await rest(client_for, alice, "patch", f"rooms/{lobby.pk}/", {"name": "Main Hall", "topic": "New"})
    assert status == 200
    for socket, role in ((alice_socket, "owner"), (bob_socket, "member")):
        frame = await socket.recv()
        assert frame["type"] == "room.updated"
        assert set(frame["room"]) >= ROOM_FIELDS
        assert (frame["room"]["id"], frame["room"]["name"], frame["room"]["slug"]) == (
            lobby.pk,
            "Main Hall",
            "main-hall",
        )
        assert frame["room"]["topic"] == "New"
        assert frame["room"]["my_role"] == role


@asynctest
async def test_join_over_rest_sends_room_added_to_the_joiner_and_member_joined_to_others(
    client_for, bob, mallory, lobby
) -> None:
    mallory_socket = await connect(mallory)
    bob_socket = await connect(bob)
    status, _ = await rest(client_for, mallory, "post", f"rooms/{lobby.pk}/join/")
    assert status == 200
    added = await mallory_socket.recv()
    assert added["type"] == "room.added"
    assert set(added["room"]) >= ROOM_FIELDS
    assert (added["room"]["id"], added["room"]["my_role"]) == (lobby.pk, "member")
    joined = await bob_socket.recv()
    assert joined == {
        "type": "member.joined",
        "event_id": added["event_id"],
        "room": lobby.pk,
        "user": {"id": mallory.pk, "username": "mallory", "display_name": "Mallory"},
    }


@asynctest
async def test_joiner_is_told_that_the_history_before_joining_is_read(client_for, alice, mallory, lobby) -> None:
    for n in range(3):
        newest = await say(lobby, alice, f"@mallory before you came ({n})")
    mallory_socket = await connect(mallory)
    status, room = await rest(client_for, mallory, "post", f"rooms/{lobby.pk}/join/")
    assert status == 200
    assert (room["unread_count"], room["mention_count"], room["last_read_message_id"]) == (0, 0, newest.pk)
    added = await mallory_socket.recv()
    assert added["type"] == "room.added"
    assert (added["room"]["unread_count"], added["room"]["mention_count"]) == (0, 0)
    assert added["room"]["last_read_message_id"] == newest.pk


@asynctest
async def test_direct_room_opened_over_rest_reaches_each_member_as_room_added(client_for, alice, bob) -> None:
    bob_socket = await connect(bob)
    status, room = await rest(client_for, alice, "post", "dms/", {"users": [bob.pk]})
    assert status == 201
    added = await bob_socket.recv()
    assert added["type"] == "room.added"
    assert added["room"]["id"] == room["id"]
    assert added["room"]["kind"] == "direct"
    assert {member["id"] for member in added["room"]["members"]} == {alice.pk, bob.pk}
    await say(room["id"], alice, "psst")
    assert (await bob_socket.recv())["message"]["body"] == "psst"


@pytest.mark.parametrize("removal", ["kick", "ban", "leave"])
@asynctest
async def test_removal_over_rest_sends_room_removed_to_the_user_and_member_left_to_others(
    client_for, alice, bob, carol, lobby, removal
) -> None:
    bob_socket = await connect(bob)
    carol_socket = await connect(carol)
    if removal == "kick":
        status, _ = await rest(client_for, alice, "delete", f"rooms/{lobby.pk}/members/{bob.pk}/")
    elif removal == "ban":
        status, _ = await rest(client_for, alice, "post", f"rooms/{lobby.pk}/bans/", {"user": bob.pk})
    else:
        status, _ = await rest(client_for, bob, "post", f"rooms/{lobby.pk}/leave/")
    assert status in (201, 204)
    why = {"kick": "kicked", "ban": "banned", "leave": "left"}[removal]
    removed = await bob_socket.recv()
    assert removed == {"type": "room.removed", "event_id": removed["event_id"], "room": lobby.pk, "reason": why}
    left = await carol_socket.recv()
    assert left == {
        "type": "member.left",
        "event_id": removed["event_id"],
        "room": lobby.pk,
        "user": {"id": bob.pk, "username": "bob", "display_name": "Bob"},
        "reason": why,
    }
    # Bob is out at once: his socket no longer posts or types there.
    reply = await bob_socket.error({**SEND, "room": lobby.pk})
    assert reply["code"] == "forbidden"
    reply = await bob_socket.error({"type": "typing", "room": lobby.pk})
    assert reply["code"] == "not_found"


@asynctest
async def test_room_deleted_over_rest_reaches_members_as_room_removed(client_for, alice, bob, lobby) -> None:
    bob_socket = await connect(bob)
    status, _ = await rest(client_for, alice, "delete", f"rooms/{lobby.pk}/")
    assert status == 204
    frame = await bob_socket.recv()
    assert frame == {"type": "room.removed", "event_id": frame["event_id"], "room": lobby.pk, "reason": "deleted"}


@asynctest
async def test_role_change_reaches_the_member_as_room_updated(client_for, alice, bob, carol, lobby) -> None:
    bob_socket = await connect(bob)
    carol_socket = await connect(carol)
    status, _ = await rest(client_for, alice, "patch", f"rooms/{lobby.pk}/members/{bob.pk}/", {"role": "admin"})
    assert status == 200
    frame = await bob_socket.recv()
    assert frame["type"] == "room.updated"
    assert frame["room"]["my_role"] == "admin"
    # A role is the member's own business; others' next frame is the barrier.
    await say(lobby, alice, "barrier")
    assert [frame["type"] for frame in await carol_socket.until_message("barrier")] == ["message.new"]


# --- Membership takes effect on open sockets ---------------------------------------------------------


@asynctest
async def test_new_display_name_reaches_each_socket_that_shares_a_room_once_live_and_on_resume(
    client_for, alice, bob, mallory, lobby, secret
) -> None:
    await call(room_services.member_add, actor=alice, room=secret, user_id=bob.pk)
    await call(room_services.direct_open, creator=alice, user_ids=[bob.pk])
    bob_socket = await connect(bob)
    bob_other = await connect(bob)
    alice_other = await connect(alice)
    mallory_socket = await connect(mallory)
    start = bob_socket.hello["last_event_id"]

    status, _ = await rest(client_for, alice, "patch", "users/me/", {"display_name": "Alice Liddell"})
    assert status == 200
    await say(lobby, alice, "after the rename")
    renamed = {"id": alice.pk, "username": "alice", "display_name": "Alice Liddell"}
    live: dict[str, list[dict[str, Any]]] = {}
    for name, socket in (("bob", bob_socket), ("bob's other", bob_other), ("alice's other", alice_other)):
        live[name] = await socket.until_message("after the rename")
        # Three shared rooms, three events: one frame.
        assert [frame["type"] for frame in live[name]] == ["user.updated", "message.new"], name
        assert live[name][0]["user"] == renamed
    await mallory_socket.nothing(0.1)

    # On resume: the same one frame.
    resumed = await connect(bob, query=f"?last_event_id={start}")
    replay = await resumed.until(lambda frame: frame["type"] == "resume.done")
    assert replay[:-1] == live["bob"]
    # Resuming from the frame's own id (the first of the three events): not again.
    again = await connect(bob, query=f"?last_event_id={live['bob'][0]['event_id']}")
    replay = await again.until(lambda frame: frame["type"] == "resume.done")
    assert [frame["type"] for frame in replay] == ["message.new", "resume.done"]


@asynctest
async def test_user_added_to_a_room_receives_its_next_message_without_reconnecting(
    client_for, alice, mallory, secret
) -> None:
    alice_socket = await connect(alice)
    mallory_socket = await connect(mallory)
    status, _ = await rest(client_for, alice, "post", f"rooms/{secret.pk}/members/", {"user": mallory.pk})
    assert status == 201
    added = await mallory_socket.recv()
    assert added["type"] == "room.added"
    assert (added["room"]["id"], added["room"]["visibility"], added["room"]["my_role"]) == (
        secret.pk,
        "private",
        "member",
    )
    await say(secret, alice, "welcome in")
    frame = await mallory_socket.recv()
    assert (frame["type"], frame["room"], frame["message"]["body"]) == ("message.new", secret.pk, "welcome in")
    # Ephemeral frames follow too: the socket joined the room's group.
    assert (await alice_socket.until(lambda frame: frame["type"] == "message.new"))[-1]["event_id"] == frame["event_id"]
    await mallory_socket.send({"type": "typing", "room": secret.pk})
    typing = await alice_socket.recv()
    assert (typing["type"], typing["room"], typing["user"]["id"]) == ("typing", secret.pk, mallory.pk)
    # And the socket may post there at once.
    await mallory_socket.send({**SEND, "room": secret.pk, "body": "thanks"})
    assert (await alice_socket.recv())["message"]["body"] == "thanks"


@asynctest
async def test_after_a_kick_not_one_more_message_from_the_room_reaches_the_kicked_user(
    alice, bob, carol, lobby
) -> None:
    direct, _ = await call(room_services.direct_open, creator=alice, user_ids=[bob.pk])
    bob_socket = await connect(bob)
    carol_socket = await connect(carol)

    async def post_around_the_kick() -> None:
        for n in range(60):
            if n == 30:
                await call(room_services.member_kick, actor=carol, room=lobby, user_id=bob.pk)
            await say(lobby, alice, f"lobby {n}")
            if n % 7 == 0:
                await asyncio.sleep(0.01)  # let the pump read part-way through

    # The pump reads while the posts commit, so its batches straddle the kick.
    await post_around_the_kick()
    await say(direct, alice, "barrier")
    frames = await bob_socket.until_message("barrier")
    kick_id = await call(lambda: Event.objects.get(type=Event.Type.MEMBER_LEFT, room=lobby, user=bob).id)
    lobby_messages = [frame for frame in frames if frame["type"] == "message.new" and frame["room"] == lobby.pk]
    assert [frame["message"]["body"] for frame in lobby_messages] == [f"lobby {n}" for n in range(30)]
    assert all(frame["event_id"] < kick_id for frame in lobby_messages)
    assert [frame for frame in frames if frame["type"] == "room.removed"] == [
        {"type": "room.removed", "event_id": kick_id, "room": lobby.pk, "reason": "kicked"}
    ]
    assert strictly_increasing(event_ids(frames))
    # Carol, still a member, saw every message.
    carol_frames = await carol_socket.until_message("lobby 59")
    assert len([frame for frame in carol_frames if frame["type"] == "message.new"]) == 60
    # Nor do ephemeral frames reach him.
    await carol_socket.send({"type": "typing", "room": lobby.pk})
    await bob_socket.nothing()


@asynctest
async def test_user_who_rejoins_gets_messages_again_but_none_from_while_away(alice, bob, carol, lobby) -> None:
    bob_socket = await connect(bob)
    await call(room_services.member_kick, actor=carol, room=lobby, user_id=bob.pk)
    await say(lobby, alice, "while away")
    await call(room_services.room_join, user=bob, room=lobby)
    await say(lobby, alice, "back again")
    frames = await bob_socket.until_message("back again")
    assert [frame["type"] for frame in frames] == ["room.removed", "room.added", "message.new"]


# --- Account changes close sockets ------------------------------------------------------------------


@asynctest
async def test_deactivation_closes_every_socket_of_the_user_with_4003(alice, bob, lobby) -> None:
    from accounts.services import user_deactivate

    cookie = await call(session_cookie, alice)
    token_socket = await connect(alice)
    session_socket = await connect(alice, headers=[cookie, ORIGIN])
    bob_socket = await connect(bob)
    header = bearer(alice)
    await call(user_deactivate, user=alice)
    for socket in (token_socket, session_socket):
        code, _ = await socket.close_code()
        assert code == 4003
    await bob_socket.pong()
    # The still-unexpired token and the session no longer open a socket.
    for credentials in (header, cookie):
        _, connected = await handshake([credentials, ORIGIN])
        assert connected is False


@asynctest
async def test_socket_authenticated_by_a_jwt_is_closed_with_4001_when_the_token_expires(alice, monkeypatch) -> None:
    # The handshake checks tokens on the real clock; the consumer's clock runs
    # an hour ahead, so a token living an hour expires at once for it.
    monkeypatch.setattr(consumers, "time", Clock(ahead=3600))
    cookie = await call(session_cookie, alice)
    expiring_socket = await connect(alice, headers=[bearer(alice, seconds=3600), ORIGIN])
    lasting_socket = await connect(alice, headers=[bearer(alice, seconds=7200), ORIGIN])
    session_socket = await connect(alice, headers=[cookie, ORIGIN])
    code, _ = await expiring_socket.close_code()
    assert code == 4001
    # A token with time left, and a session with no token to expire, keep their sockets.
    await lasting_socket.pong()
    await session_socket.pong()


# --- Resume -----------------------------------------------------------------------------------------


@asynctest
async def test_resume_replays_exactly_the_missed_events_in_order_then_goes_live(alice, bob, lobby) -> None:
    socket = await connect(alice)
    await say(lobby, bob, "seen")
    seen = (await socket.recv())["event_id"]
    await socket.disconnect()

    for n in range(5):
        await say(lobby, bob, f"missed {n}")
    await call(room_services.room_update, actor=alice, room=lobby, topic="while you were out")
    missed = await call(lambda: list(Event.objects.filter(id__gt=seen).order_by("id").values_list("id", flat=True)))

    socket = await connect(alice, query=f"?last_event_id={seen}")
    assert socket.hello["last_event_id"] == missed[-1]
    replay = await socket.until(lambda frame: frame["type"] == "resume.done")
    assert [frame["type"] for frame in replay] == ["message.new"] * 5 + ["room.updated", "resume.done"]
    assert [frame["message"]["body"] for frame in replay[:5]] == [f"missed {n}" for n in range(5)]
    assert event_ids(replay[:-1]) == missed
    assert replay[-1] == {"type": "resume.done", "last_event_id": missed[-1]}
    await say(lobby, bob, "live")
    live = await socket.recv()
    assert (live["type"], live["message"]["body"]) == ("message.new", "live")
    assert live["event_id"] > missed[-1]


@asynctest
async def test_resume_frames_match_the_live_frames_of_the_same_events(alice, bob, lobby) -> None:
    live_socket = await connect(alice)
    start = live_socket.hello["last_event_id"]
    message = await say(lobby, bob, "one")
    await call(room_services.room_update, actor=alice, room=lobby, name="Renamed")
    await call(room_services.room_join, user=await call(User.objects.create_user, "dave", password="x"), room=lobby)
    await call(services.read_mark, user=alice, room=lobby, message_id=message.pk)
    live = await live_socket.until(lambda frame: frame["type"] == "read")
    resumed = await connect(alice, query=f"?last_event_id={start}")
    replay = await resumed.until(lambda frame: frame["type"] == "resume.done")
    assert replay[:-1] == live


@asynctest
async def test_resume_from_the_newest_event_replays_nothing(alice, lobby) -> None:
    newest = await call(newest_event_id)
    socket = await connect(alice, query=f"?last_event_id={newest}")
    assert await socket.recv() == {"type": "resume.done", "last_event_id": newest}


@asynctest
async def test_event_ids_on_one_socket_only_grow_across_resume_and_live_traffic(alice, bob, carol, lobby) -> None:
    socket = await connect(alice)
    start = socket.hello["last_event_id"]
    await socket.disconnect()
    for n in range(10):
        await say(lobby, bob, f"before {n}")
    socket = await connect(alice, query=f"?last_event_id={start}")

    async def traffic() -> None:
        for n in range(30):
            await say(lobby, carol if n % 2 else bob, f"during {n}")
            await asyncio.sleep(0)

    # Posts commit while the socket replays and hands over to live delivery.
    writer = asyncio.create_task(traffic())
    frames = await socket.until_message("during 29")
    await writer
    bodies = [frame["message"]["body"] for frame in frames if frame["type"] == "message.new"]
    assert bodies == [f"before {n}" for n in range(10)] + [f"during {n}" for n in range(30)]
    assert [frame["type"] for frame in frames].count("resume.done") == 1
    assert strictly_increasing(event_ids(frames))


@asynctest
async def test_resume_never_shows_private_rooms_or_events_from_before_joining(
    alice, bob, mallory, lobby, secret
) -> None:
    socket = await connect(mallory)
    start = socket.hello["last_event_id"]
    await socket.disconnect()

    await say(secret, alice, "private words")
    await say(lobby, bob, "before mallory joined")
    await call(room_services.room_join, user=mallory, room=lobby)
    await say(lobby, bob, "after mallory joined")
    await say(secret, alice, "more private words")
    newest = await call(newest_event_id)

    socket = await connect(mallory, query=f"?last_event_id={start}")
    replay = await socket.until(lambda frame: frame["type"] == "resume.done")
    assert [frame["type"] for frame in replay] == ["room.added", "message.new", "resume.done"]
    assert replay[0]["room"]["id"] == lobby.pk
    assert replay[1]["message"]["body"] == "after mallory joined"
    # The newest event she may see, not the private room's newer one.
    assert replay[-1]["last_event_id"] == replay[1]["event_id"] < newest


@asynctest
async def test_resume_after_a_kick_replays_the_room_up_to_the_kick_and_nothing_after(alice, bob, carol, lobby) -> None:
    socket = await connect(bob)
    start = socket.hello["last_event_id"]
    await socket.disconnect()
    await say(lobby, alice, "still in")
    await call(room_services.member_kick, actor=carol, room=lobby, user_id=bob.pk)
    await say(lobby, alice, "gone")
    socket = await connect(bob, query=f"?last_event_id={start}")
    replay = await socket.until(lambda frame: frame["type"] == "resume.done")
    assert [frame["type"] for frame in replay] == ["message.new", "room.removed", "resume.done"]
    assert replay[0]["message"]["body"] == "still in"
    assert replay[1]["reason"] == "kicked"


@asynctest
async def test_resume_from_below_the_prune_watermark_requires_a_resync(alice, bob, lobby) -> None:
    from django.core.management import call_command
    from django.utils import timezone

    socket = await connect(alice)
    start = socket.hello["last_event_id"]
    await socket.disconnect()
    await say(lobby, bob, "pruned away")

    def prune_everything() -> None:
        Event.objects.update(created_at=timezone.now() - timedelta(days=30))
        call_command("prune_events", "--days", "0", stdout=io.StringIO())

    await call(prune_everything)
    assert await call(Event.objects.count) == 0

    socket = await connect(alice, query=f"?last_event_id={start}")
    assert await socket.recv() == {"type": "resync.required"}
    # Then live events, after the resync notice; no replay, no resume.done.
    await say(lobby, bob, "after the prune")
    frame = await socket.recv()
    assert (frame["type"], frame["message"]["body"]) == ("message.new", "after the prune")
    assert frame["event_id"] > start


@asynctest
async def test_resume_from_exactly_the_prune_watermark_missed_nothing(alice, bob, lobby) -> None:
    from django.core.management import call_command
    from django.utils import timezone

    await say(lobby, bob, "old")

    def prune_everything() -> int:
        newest = newest_event_id()
        Event.objects.update(created_at=timezone.now() - timedelta(days=30))
        call_command("prune_events", "--days", "0", stdout=io.StringIO())
        return newest

    watermark = await call(prune_everything)
    await say(lobby, bob, "new")
    socket = await connect(alice, query=f"?last_event_id={watermark}")
    replay = await socket.until(lambda frame: frame["type"] == "resume.done")
    assert [frame.get("message", {}).get("body") for frame in replay[:-1]] == ["new"]


@asynctest
async def test_after_pruning_every_event_hello_and_resume_stand_at_the_pruned_through_mark(alice, bob, lobby) -> None:
    from django.core.management import call_command
    from django.utils import timezone

    await say(lobby, bob, "pruned away")

    def prune_everything() -> int:
        newest = newest_event_id()
        Event.objects.update(created_at=timezone.now() - timedelta(days=30))
        call_command("prune_events", "--days", "0", stdout=io.StringIO())
        return newest

    watermark = await call(prune_everything)
    assert await call(Event.objects.count) == 0

    # A fresh socket is told where the log stands, not that it is empty.
    fresh = await connect(alice)
    assert fresh.hello["last_event_id"] == watermark
    await fresh.disconnect()
    # Resuming from that id has missed nothing: no resync, an empty replay.
    resumed = await connect(alice, query=f"?last_event_id={watermark}")
    assert resumed.hello["last_event_id"] == watermark
    assert await resumed.recv() == {"type": "resume.done", "last_event_id": watermark}
    await say(lobby, bob, "after the prune")
    frame = await resumed.recv()
    assert (frame["type"], frame["message"]["body"]) == ("message.new", "after the prune")
    assert frame["event_id"] > watermark


@asynctest
async def test_resume_of_a_user_whose_rooms_were_quiet_through_a_prune_needs_no_resync(
    alice, bob, lobby, secret
) -> None:
    from django.core.management import call_command
    from django.utils import timezone

    socket = await connect(bob)
    told = socket.hello["last_event_id"]
    await socket.disconnect()
    await say(secret, alice, "only in a room bob is not in")

    def prune_everything() -> int:
        newest = newest_event_id()
        Event.objects.update(created_at=timezone.now() - timedelta(days=30))
        call_command("prune_events", "--days", "0", stdout=io.StringIO())
        return newest

    watermark = await call(prune_everything)
    assert told < watermark
    socket = await connect(bob, query=f"?last_event_id={told}")
    assert await socket.recv() == {"type": "resume.done", "last_event_id": watermark}
    await say(lobby, alice, "live again")
    frame = await socket.recv()
    assert (frame["type"], frame["message"]["body"]) == ("message.new", "live again")


@asynctest
async def test_resume_from_a_cursor_beyond_the_newest_event_requires_a_resync(alice, bob, lobby) -> None:
    newest = await call(newest_event_id)
    socket = await connect(alice, query=f"?last_event_id={newest + 1000}")
    assert socket.hello["last_event_id"] == newest
    assert await socket.recv() == {"type": "resync.required"}
    await say(lobby, bob, "live after resync")
    assert (await socket.recv())["message"]["body"] == "live after resync"


@asynctest
async def test_resume_with_a_cursor_that_is_not_an_event_id_is_a_bad_request_and_closes(alice, lobby) -> None:
    for cursor in ["abc", "-1", "1.5", "9" * 30, "0x10", "1e3", "²", "%D9%A1", "1_0", "+1", "%201"]:
        socket = await connect(alice, query=f"?last_event_id={cursor}")
        code, frames = await socket.close_code()
        assert [(frame["type"], frame.get("code")) for frame in frames] == [("error", "bad_request")], cursor
        assert code == 1008
        await socket.disconnect()


@asynctest
async def test_resume_replays_what_a_socket_open_all_along_received(
    client_for, alice, bob, carol, mallory, lobby, secret
) -> None:
    watcher = await connect(mallory)
    start = watcher.hello["last_event_id"]
    await say(lobby, bob, "before joining")
    await call(room_services.room_join, user=mallory, room=lobby)
    await say(lobby, bob, "first stint")
    await call(room_services.member_add, actor=alice, room=secret, user_id=mallory.pk)
    await say(secret, alice, "secret stint")
    await call(room_services.member_kick, actor=carol, room=lobby, user_id=mallory.pk)
    await say(lobby, bob, "while kicked")
    await call(room_services.room_leave, user=mallory, room=secret)
    await say(secret, alice, "after leaving secret")
    await call(room_services.room_join, user=mallory, room=lobby)
    await say(lobby, bob, "second stint")
    await call(room_services.room_update, actor=alice, room=lobby, topic="t")
    await say(lobby, bob, "end")
    live = await watcher.until_message("end")
    assert [frame.get("message", {}).get("body") for frame in live if frame["type"] == "message.new"] == [
        "first stint",
        "secret stint",
        "second stint",
        "end",
    ]
    resumed = await connect(mallory, query=f"?last_event_id={start}")
    replay = await resumed.until(lambda frame: frame["type"] == "resume.done")
    assert replay[:-1] == live


# --- Presence ---------------------------------------------------------------------------------------


@asynctest
async def test_presence_goes_online_with_the_first_socket_and_offline_after_the_last(
    monkeypatch, alice, bob, mallory, lobby
) -> None:
    monkeypatch.setattr(presence, "OFFLINE_GRACE_SECONDS", 0.2)
    bob_socket = await connect(bob)
    mallory_socket = await connect(mallory)
    no_skip: tuple[str, ...] = ()

    first = await connect(alice)
    assert await bob_socket.recv(skip=no_skip) == {"type": "presence", "user": alice.pk, "status": "online"}
    second = await connect(alice)
    await second.pong()  # its connect has finished, presence included
    await first.disconnect()
    # Still one socket open: no second "online", and no "offline" once the grace has passed.
    await bob_socket.nothing(0.6, skip=no_skip)

    await second.disconnect()
    assert await bob_socket.recv(2, skip=no_skip) == {"type": "presence", "user": alice.pk, "status": "offline"}
    # Mallory shares no room with alice: she hears nothing of her.
    await mallory_socket.nothing(0.1, skip=no_skip)
    assert await presence.is_online(alice.pk) is False


async def recv_all(socket: Socket, until: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """Return every frame, presence included, up to and including the first that matches."""
    frames = []
    while True:
        frames.append(await socket.recv(skip=()))
        if until(frames[-1]):
            return frames


@asynctest
async def test_presence_reaches_each_socket_once_however_many_rooms_are_shared(
    monkeypatch, alice, bob, carol, lobby, secret
) -> None:
    monkeypatch.setattr(presence, "OFFLINE_GRACE_SECONDS", 0.1)
    third = await call(room_services.room_create, creator=alice, name="Third")
    for room in (secret, third):
        await call(room_services.member_add, actor=alice, room=room, user_id=bob.pk)
    bob_first = await connect(bob)
    bob_second = await connect(bob)

    alice_socket = await connect(alice)
    await alice_socket.pong()  # her connect, presence included, is over
    await alice_socket.send({"type": "typing", "room": lobby.pk})
    for socket in (bob_first, bob_second):
        frames = await recv_all(socket, lambda frame: frame["type"] == "typing")
        presence_frames = [frame for frame in frames if frame["type"] == "presence"]
        assert presence_frames == [{"type": "presence", "user": alice.pk, "status": "online"}]

    await alice_socket.disconnect()
    for socket in (bob_first, bob_second):
        assert await socket.recv(2, skip=()) == {"type": "presence", "user": alice.pk, "status": "offline"}
    # Synchronisation: the offline announcement is over, then a typing frame sent
    # after it comes behind any repeat it could have made.
    await asyncio.gather(*list(consumers._background))
    carol_socket = await connect(carol)
    await carol_socket.pong()
    await carol_socket.send({"type": "typing", "room": lobby.pk})
    for socket in (bob_first, bob_second):
        frames = await recv_all(socket, lambda frame: frame["type"] == "typing")
        assert [frame for frame in frames if frame.get("user") == alice.pk] == []


@asynctest
async def test_presence_is_not_told_through_a_direct_conversation_never_written_in(
    monkeypatch, alice, bob, mallory, lobby
) -> None:
    monkeypatch.setattr(presence, "OFFLINE_GRACE_SECONDS", 0.1)
    room, _ = await call(room_services.direct_open, creator=mallory, user_ids=[alice.pk])
    alice_socket = await connect(alice)

    async def presence_of_mallory_until_typing() -> list[dict[str, Any]]:
        # Bob types in lobby after mallory's announcement: alice's frames up to it hold any presence.
        bob_socket = await connect(bob)
        await bob_socket.pong()
        await bob_socket.send({"type": "typing", "room": lobby.pk})
        frames = await recv_all(alice_socket, lambda frame: frame["type"] == "typing")
        await bob_socket.disconnect()
        return [frame for frame in frames if frame["type"] == "presence" and frame["user"] == mallory.pk]

    mallory_socket = await connect(mallory)
    await mallory_socket.pong()
    assert await presence_of_mallory_until_typing() == []
    await mallory_socket.disconnect()
    await asyncio.gather(*list(consumers._background))
    assert await presence_of_mallory_until_typing() == []

    await say(room.pk, mallory, "hello")
    assert (await alice_socket.recv())["type"] == "message.new"
    mallory_socket = await connect(mallory)
    await mallory_socket.pong()
    assert await presence_of_mallory_until_typing() == [{"type": "presence", "user": mallory.pk, "status": "online"}]
    await mallory_socket.disconnect()
    await asyncio.gather(*list(consumers._background))
    assert await presence_of_mallory_until_typing() == [{"type": "presence", "user": mallory.pk, "status": "offline"}]


@asynctest
async def test_quick_reconnect_never_shows_the_user_offline(monkeypatch, alice, bob, lobby) -> None:
    monkeypatch.setattr(presence, "OFFLINE_GRACE_SECONDS", 1.0)
    bob_socket = await connect(bob)
    first = await connect(alice)
    assert (await bob_socket.recv(skip=()))["status"] == "online"
    await first.disconnect()
    await connect(alice)
    # The reconnect came within the grace: bob sees alice come online again, never go offline.
    frames = []
    with contextlib.suppress(AssertionError):
        while True:
            frames.append(await bob_socket.recv(1.5, skip=()))
    assert {"type": "presence", "user": alice.pk, "status": "offline"} not in frames


# --- Fuzz ---------------------------------------------------------------------------------------------

# The frame rate limit is lifted for these tests (the `no_rate_limit` fixture sets
# the consumer's RATE_BURST and RATE_PER_SECOND to 1e9); test_rate_limit_* keep it on.
# FUZZ_FRAMES=50000 (and FUZZ_SEED) for a longer run; docs/reliability.md.
FUZZ_FRAMES = int(os.environ.get("FUZZ_FRAMES", "3000"))
FUZZ_SEED = int(os.environ.get("FUZZ_SEED", "20260601"))
# The client frames of docs/websocket.md and their fields.
FRAME_FIELDS = {
    "message.send": ["room", "body", "client_id", "parent"],
    "typing": ["room"],
    "read": ["room", "message_id"],
    "ping": [],
}
FUZZ_FIELDS = ["type", "room", "body", "client_id", "parent", "message_id"]
FUZZ_TYPES = list(FRAME_FIELDS)
ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2**31,
    2**63,
    2**64,
    -(2**63),
    10**300,
    1.5,
    1e308,
    -0.0,
    "",
    " ",
    "1",
    "x" * 5000,
    "\u202e",
    "\ufeff",
    "💥",
    "<script>",
    [],
    {},
    [1],
    {"id": 1},
    [[[[[]]]]],
]
RAW_FRAMES = [
    "",
    " ",
    "null",
    "1",
    '"message.send"',
    "[]",
    "[" * 20_000 + "]" * 20_000,
    '{"a":' * 10_000 + "1" + "}" * 10_000,
    '{"type": "message.send", "room": ' + "9" * 5000 + "}",
    '{"type": "read", "room": 1e999, "message_id": -1e999}',
    '{"type": "typing", "room": NaN}',
    '{"type": "typing", "room": Infinity}',
    '{"type": "ping", "type": "read"}',
    '{"type": "message.send", "body": "\\ud800", "client_id": "\\udfff", "room": 1}',
    '{"type": "\\u0000"}',
    "\ufeff{}",
    "{}" * 1000,
    '{"type": "message.send", "room": 1, "body": "hi", "client_id": "' + "c" * 100 + '"}',
    '{"type": "ping"',
    "{'type': 'ping'}",
    '{"type": "ping"}\x00',
]
# Binary frames: the protocol allows text only. Invalid UTF-8 can only arrive as bytes
# (Daphne's WebSocket layer closes a text frame that is not UTF-8 with 1007).
BINARY_FRAMES = [
    b"",
    b"\x00",
    b"\xff\xfe\xfd",
    b"\xc3\x28",
    b"\xed\xa0\x80",  # an encoded surrogate
    b"\xf4\x90\x80\x80",  # above U+10FFFF
    b'{"type": "ping"}',
    b'{"type": "message.send", "room": 1, "body": "\xff", "client_id": "b"}',
    bytes(range(256)),
]


def random_json(rng: random.Random, depth: int = 0) -> Any:
    """Return a random JSON value: scalars at depth, containers above."""
    choice = rng.random()
    if depth > 4 or choice < 0.5:
        return rng.choice(ODD_VALUES[:22]) if rng.random() < 0.5 else rng.randint(-(2**70), 2**70)
    if choice < 0.75:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = [*FUZZ_FIELDS, "x", "", "__proto__"]
    return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def _random_raw(rng: random.Random) -> str:
    """Deep nesting, huge numbers, truncation and stray bytes, as raw text (under the 64 KiB frame limit)."""
    kind = rng.randrange(5)
    if kind == 0:
        opener, closer = rng.choice([("[", "]"), ('{"a":', "}"), ('{"type":', "}")])
        # As deep as fits in a frame: a bigger one is closed with 1009 before it is parsed.
        depth = min(rng.choice([50, 500, 999, 1000, 1001, 5000, 30_000]), 60_000 // len(opener + closer))
        return opener * depth + "1" + closer * depth
    if kind == 1:
        digits = "".join(rng.choice("0123456789") for _ in range(rng.choice([19, 20, 310, 4301, 20_000])))
        number = rng.choice([digits, "-" + digits, digits + "e99999", "0." + digits, digits + ".5"])
        field = rng.choice(["room", "message_id", "parent", "body", "client_id"])
        return json.dumps({"type": rng.choice(FUZZ_TYPES), "room": 1})[:-1] + f', "{field}": {number}}}'
    if kind == 2:
        text = json.dumps({"type": rng.choice(FUZZ_TYPES), "room": 1, "body": "hi", "client_id": "t"})
        return text[: rng.randrange(len(text))]
    if kind == 3:
        return "".join(chr(rng.choice([rng.randrange(0, 32), rng.randrange(0x80, 0x800), 0xFFFF])) for _ in range(20))
    return json.dumps(random_json(rng), ensure_ascii=rng.random() < 0.5)


def fuzz_frames(seed: int, count: int) -> list[str | bytes]:
    """Return `count` frames (str: text, bytes: binary), the fixed ones first among them.

    Fixed: every field of every client frame type set to each odd value, the
    raw oddities and the binary frames. Then random JSON (mostly objects with
    a frame type), random raw text and random bytes.
    """
    rng = random.Random(seed)
    valid = {"room": 1, "body": "hello", "client_id": "fz", "parent": None, "message_id": 1}
    frames: list[str | bytes] = []
    for kind, fields in FRAME_FIELDS.items():
        good = {"type": kind, **{field: valid[field] for field in fields}}
        for field in ["type", *fields]:
            frames += [json.dumps({**good, field: value}) for value in ODD_VALUES]
        frames += [json.dumps({key: value for key, value in good.items() if key != field}) for field in fields]
    frames += RAW_FRAMES
    frames += BINARY_FRAMES
    while len(frames) < count:
        roll = rng.random()
        if roll < 0.6:
            value = random_json(rng)
            if isinstance(value, dict) and rng.random() < 0.7:
                value["type"] = rng.choice([*FUZZ_TYPES, "", "pong", "hello", "message.new", "MESSAGE.SEND"])
            frames.append(json.dumps(value))
        elif roll < 0.9:
            frames.append(_random_raw(rng))
        else:
            frames.append(rng.randbytes(rng.randrange(0, 64)))
    rng.shuffle(frames)
    return frames[:count]


async def send_any(socket: Socket, frame: str | bytes) -> None:
    if isinstance(frame, bytes):
        await socket.send_bytes(frame)
    else:
        await socket.send_text(frame)


def fuzz_count(default: int) -> int:
    return max(default, FUZZ_FRAMES)


@asynctest
async def test_no_frame_can_crash_the_consumer_or_write_a_message(no_rate_limit, mallory, lobby, secret) -> None:
    socket = await connect(mallory)
    frames = fuzz_frames(seed=FUZZ_SEED, count=fuzz_count(3000))
    codes: collections.Counter[str] = collections.Counter()
    # Mallory is in no room, so every frame has exactly one answer: an error, or a pong.
    for frame in frames:
        await send_any(socket, frame)
        try:
            reply = await socket.recv()
        except Closed as closed:
            raise AssertionError(f"closed with {closed.code} by {frame[:200]!r}") from None
        if reply["type"] == "pong":
            codes["pong"] += 1
            continue
        assert reply["type"] == "error", (frame[:200], reply)
        assert reply["code"] in ERROR_CODES, (frame[:200], reply)
        assert isinstance(reply["detail"], str), reply
        codes[reply["code"]] += 1
    await socket.pong()
    assert await call(message_count) == 0
    assert sum(codes.values()) == len(frames) >= 3000
    assert codes["bad_request"] and codes["unknown_type"] and codes["not_found"], codes


def _never_valid(field: str, value: Any, room_ids: set[int]) -> bool:
    """Whether putting `value` in `field` of a good message.send surely makes it invalid."""
    if field == "room":
        return type(value) is not int or value not in room_ids
    if field == "body":
        if not isinstance(value, str):
            return True
        text = value.strip()
        surrogate = any(0xD800 <= ord(character) <= 0xDFFF for character in text)
        return not text or len(text) > 4000 or "\x00" in text or surrogate or not has_visible_character(text)
    if field == "client_id":
        return not isinstance(value, str) or len(value) > 64 or not value.isprintable()
    if field == "parent":
        return value is not None
    return field == "type"


@asynctest
async def test_no_bad_field_in_a_members_message_send_can_crash_the_consumer(no_rate_limit, alice, lobby) -> None:
    socket = await connect(alice)
    good = {"type": "message.send", "room": lobby.pk, "body": "hello", "client_id": "ok"}
    sent = 0
    for field in ("room", "body", "client_id", "parent"):
        for value in [*ODD_VALUES, "\ud800", "a\x00b", "x" * 4001, 0, -5]:
            if not _never_valid(field, value, {lobby.pk}):
                continue
            await socket.send({**good, field: value})
            reply = await socket.recv()
            assert reply["type"] == "error" and reply["code"] in ERROR_CODES, (field, value, reply)
            sent += 1
    assert sent > 80
    await socket.pong()
    assert await call(message_count) == 0


@asynctest
async def test_random_frames_from_a_member_write_only_the_valid_messages(no_rate_limit, alice, bob, lobby) -> None:
    """A member's mutated frames: each is answered (an error, or its effect) and only valid sends make rows."""
    socket = await connect(alice)
    rng = random.Random(FUZZ_SEED + 1)
    first_message = await say(lobby, bob, "read me")
    await socket.until_message("read me")
    rooms = {lobby.pk}
    valid = {"room": lobby.pk, "body": "hello", "client_id": "?", "parent": None, "message_id": first_message.pk}
    acknowledged: set[int] = set()
    known_messages = {first_message.pk}
    posted_client_ids: set[str] = set()
    invalid_sends = 0
    count = max(600, FUZZ_FRAMES // 5)
    for number in range(count):
        kind = rng.choice(FUZZ_TYPES)
        frame: dict[str, Any] = {"type": kind, **{field: valid[field] for field in FRAME_FIELDS[kind]}}
        if kind == "message.send":
            frame["client_id"] = f"m{number}"
        field = rng.choice(["type", *FRAME_FIELDS[kind]]) if rng.random() < 0.8 else None
        if field is not None:
            frame[field] = rng.choice([*ODD_VALUES, random_json(rng), "\ud800", "a\x00b", "x" * 4001])
        if field is None:
            bad = False
        elif kind == "message.send" and field == "parent":
            # A parent naming a message of the room is a valid reply.
            value = frame["parent"]
            bad = value is not None and (type(value) is not int or value not in known_messages)
        elif kind == "message.send":
            bad = _never_valid(field, frame[field], rooms)
        else:
            bad = field in ("type", "room") and _never_valid(field, frame[field], rooms)
        await socket.send(frame)
        # Then a ping: everything the frame caused arrives before the pong.
        await socket.send({"type": "ping"})
        answers = await socket.until(lambda reply: reply["type"] == "pong")
        if frame.get("type") == "ping":  # its own pong came first: wait for the barrier's
            answers += await socket.until(lambda reply: reply["type"] == "pong")
        answers = answers[:-1]
        errors = [reply for reply in answers if reply["type"] == "error"]
        new = [reply for reply in answers if reply["type"] == "message.new"]
        assert all(reply["code"] in ERROR_CODES for reply in errors), (frame, errors)
        if frame.get("type") == "ping" and not errors:
            assert [reply["type"] for reply in answers] == ["pong"], (frame, answers)
        if kind == "message.send" and bad:
            invalid_sends += 1
            assert errors and not new, (frame, answers)
        if new:
            assert not errors and kind == "message.send" and frame.get("type") == "message.send", (frame, answers)
            acknowledged.update(reply["message"]["id"] for reply in new)
        # Accepted: its message.new comes through the pump, maybe after the pong. Only a send
        # repeating a client_id already posted gets none (the same message, no new event).
        accepted = kind == "message.send" and frame.get("type") == "message.send" and not errors
        if accepted and not new and frame.get("client_id") not in posted_client_ids:
            later = await socket.until(lambda reply: reply["type"] in ("message.new", "error"))
            new = [reply for reply in later if reply["type"] == "message.new"]
            # A blank client_id is no client_id: stored as null, and never a repeat.
            assert new and new[0]["message"]["client_id"] in (frame["client_id"], None), (frame, later)
            acknowledged.add(new[0]["message"]["id"])
        posted_client_ids.update(reply["message"]["client_id"] for reply in new if reply["message"]["client_id"])
        known_messages.update(acknowledged)
    ids = set(await call(lambda: list(Message.objects.filter(author=alice).values_list("id", flat=True))))
    assert ids == acknowledged
    assert invalid_sends > count // 10


# --- The pump across event loops --------------------------------------------------------------------


def test_pump_restarts_in_each_new_event_loop_and_keeps_delivering(alice, bob, lobby) -> None:
    """Each test (and each server process) runs its own loop; the pump must follow, not die with the old one."""
    tasks = []

    async def session(body: str) -> None:
        socket = await connect(alice)
        try:
            await say(lobby, bob, body)
            frames = await socket.until_message(body)
            assert [frame["type"] for frame in frames] == ["message.new"]
            tasks.append(delivery.pump._tasks[0])
        finally:
            _open_sockets.remove(socket)
            await socket.disconnect()

    async_to_sync(session)("first loop")
    async_to_sync(session)("second loop")
    first, second = tasks
    assert first is not second
    assert first is not None and first.done()
    assert delivery.pump.listeners == set()
