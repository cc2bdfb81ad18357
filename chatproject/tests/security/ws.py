"""A small WebSocket harness for the security tests: real ASGI stack, JSON frames, always disconnected.

Tests using it need a transactional database (the event pump reads committed
rows) and the `fresh_realtime` fixture.
"""

from __future__ import annotations

import asyncio
import functools
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator

from chatproject.asgi import application
from realtime import delivery, presence

ORIGIN = (b"origin", b"http://127.0.0.1:8000")
# The server as the page at ORIGIN reaches it: every HTTP/1.1 client sends Host.
HOST = (b"host", b"127.0.0.1:8000")
TIMEOUT = 5.0


class Closed(AssertionError):
    def __init__(self, code: int | None) -> None:
        super().__init__(f"socket closed with code {code}")
        self.code = code


class Socket:
    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.communicator = communicator
        self.closed = False

    async def recv(self, wait: float = TIMEOUT, *, skip: tuple[str, ...] = ("presence", "typing")) -> dict[str, Any]:
        """Return the next frame not of a `skip` type; raise Closed when the server closes instead."""
        while True:
            output = await asyncio.wait_for(self.communicator.output_queue.get(), wait)
            if output["type"] == "websocket.close":
                self.closed = True
                raise Closed(output.get("code"))
            frame = json.loads(output["text"])
            if frame["type"] not in skip:
                return frame

    async def send(self, frame: dict[str, Any]) -> None:
        await self.communicator.send_to(text_data=json.dumps(frame))

    async def close_code(self, wait: float = TIMEOUT) -> int | None:
        """Wait for the server to close the socket, skipping frames; return the close code."""
        while True:
            try:
                await self.recv(wait, skip=())
            except Closed as closed:
                return closed.code

    async def disconnect(self) -> None:
        if not self.closed:
            self.closed = True
            await self.communicator.disconnect(timeout=TIMEOUT)


_open: list[Socket] = []


def asynctest(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async test in a fresh event loop and disconnect every socket it opened."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        async def main() -> None:
            try:
                await test(*args, **kwargs)
            finally:
                while _open:
                    await _open.pop().disconnect()

        async_to_sync(main)()

    return run


@pytest.fixture
def fresh_realtime(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    """A pump that has not seen earlier tests' events, presence of its own and a channel prefix of its own."""
    monkeypatch.setattr(delivery, "pump", delivery.EventPump())
    monkeypatch.setattr(presence, "_backend", None)
    settings.CHANNEL_PREFIX = f"chat-sec-{uuid.uuid4().hex[:12]}"


_in_test_thread = sync_to_async(lambda function, args, kwargs: function(*args, **kwargs), thread_sensitive=True)


async def call(function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Run a sync (database) function in the test's thread."""
    return await _in_test_thread(function, args, kwargs)


def _bearer(user: Any) -> tuple[bytes, bytes]:
    from accounts.services import tokens_for

    return (b"authorization", f"Bearer {tokens_for(user)['access']}".encode())


async def connect(user: Any) -> Socket:
    """Open an accepted socket as `user` and read its hello."""
    header = await call(_bearer, user)
    socket = Socket(WebsocketCommunicator(application, "/ws/", headers=[HOST, header, ORIGIN]))
    _open.append(socket)
    connected, _ = await socket.communicator.connect(timeout=TIMEOUT)
    assert connected, "handshake refused"
    hello = await socket.recv()
    assert hello["type"] == "hello", hello
    return socket


async def handshake_refused(headers: list[tuple[bytes, bytes]]) -> bool:
    socket = Socket(WebsocketCommunicator(application, "/ws/", headers=[HOST, *headers]))
    _open.append(socket)
    connected, _ = await socket.communicator.connect(timeout=TIMEOUT)
    return not connected
