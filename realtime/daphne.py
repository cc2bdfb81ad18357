"""Daphne adaptations: the one module that touches Daphne's, Twisted's and autobahn's private state.

The surface (nothing else here is for use elsewhere):

- `install()`: check the versions and every private attribute used below,
  then apply the patches. chatproject/asgi.py calls it once.
- `socket_writer(scope)`: the direct writer for one socket (`SocketWriter`),
  or None when not served by Daphne (in-process tests).
- `buffered_bytes(protocol)`: bytes written to a socket and not yet taken
  by the kernel, the probe behind backpressure.
- `WRITTEN_FOR` and `private_state_problems()`: what the check compares.

What the patches do, and why (docs/performance.md has the measurements):

- Close codes. Autobahn lets an application close only with 1000 or
  3000–4999, so `close(1009)` for an oversized frame (docs/websocket.md)
  came out as 1011 with a traceback. 1008 and 1009 are RFC 6455 codes a
  server may send; they go out as they are.
- Oversized frames. Above Daphne's own cap (--websocket-max-frame-size)
  autobahn dropped the TCP connection (the client saw 1006); it now sends a
  1009 close and discards the rest of the frame unread.
- Shutdown. On SIGTERM Daphne cancels every application and stops the
  reactor, so sockets just dropped (1006). Every open socket first gets a
  close frame with 1012 (service restart), and up to SHUTDOWN_CLOSE_WAIT
  seconds for the closing handshakes. A process still running
  settings.SHUTDOWN_DEADLINE seconds after SIGTERM exits anyway.
- Backpressure. Daphne writes whatever an application sends into Twisted's
  buffer at once, so a client that stopped reading grew server memory
  without bound. A WebSocket send now waits while more than
  settings.WS_SEND_BUFFER_MAX bytes are buffered for its socket: the
  consumer's outbox then fills and drops it (4009).
- Form bodies. Twisted parses every POST body typed multipart/form-data
  (or urlencoded) into `request.args` before Daphne sees the request, all
  in memory, though Daphne never reads `args` (it hands the raw body to the
  application): a 20 MiB upload took the process 270 MiB above its resting
  size. That parsing is skipped; Django parses the body itself, streaming
  files to disk (bench/file_transfer.py, docs/performance.md).
- Request bodies. Daphne reads a request's whole body (which Twisted keeps
  in a temporary file past 100 KB) into 8 KiB messages and queues them all
  at once for the application: a 20 MiB upload sat in memory as 2,560
  chunks. The queue now keeps where each chunk lies in that file and reads
  it when the application asks for it.
- Early refusals. Twisted receives a request's whole body before Daphne
  runs anything, so a 413 for an upload whose Content-Length is over the
  limit came only after all of it had arrived. A refusal registered with
  `install(refuse_early=...)` (files.asgi.refusal_for) is now answered as
  soon as the headers are in; what the client still sends is read and
  dropped, and the connection closes shortly after.
- Direct writes. The event pump writes one event to hundreds of sockets;
  through the ASGI `send` each write is a coroutine, a Daphne dispatch and
  autobahn framing the same text again. Daphne's protocol object goes in
  the scope, so `SocketWriter` writes a frame prepared once straight to the
  socket's transport.

Versions: written for the versions in WRITTEN_FOR (pinned in
requirements.txt). `install()` refuses to start (RuntimeError) when any
private attribute or method used here is missing or has another shape,
since the patches would then misbehave without a word; on other versions
that pass every check it logs a warning and goes on.
realtime/tests/test_daphne_adaptations.py fails on any other version, so an
upgrade is a deliberate change that re-reads this module.
"""

from __future__ import annotations

import asyncio
import faulthandler
import functools
import inspect
import io
import logging
import os
import socket as stdlib_socket
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from importlib import metadata
from typing import Any

from core import db

logger = logging.getLogger(__name__)

WRITTEN_FOR = {"daphne": "4.2.3", "twisted": "26.10.0", "autobahn": "26.11.1"}

PROTOCOL_CLOSE_CODES = {1008, 1009}
CLOSE_SERVICE_RESTART = 1012
SHUTDOWN_CLOSE_WAIT = 1.0
SLOW_SOCKET_POLL = 0.05
SCOPE_PROTOCOL_KEY = "chat.daphne_protocol"

_open_sockets: weakref.WeakSet[Any] = weakref.WeakSet()
_installed = False


# --- The surface --------------------------------------------------------------------------------


EarlyRefusal = Callable[[str, str, int | None], bytes | None]
EARLY_REFUSAL_GRACE = 5.0


def install(*, refuse_early: EarlyRefusal | None = None) -> None:
    """Check the versions and the private state used here, then apply every patch (once).

    `refuse_early(method, path, content_length)` returns the JSON body of a
    413 to answer from the headers alone, or None to receive the request.
    """
    global _installed
    if _installed:
        return
    problems = private_state_problems()
    if problems:
        raise RuntimeError(
            "realtime/daphne.py was written for "
            + ", ".join(f"{name} {version}" for name, version in WRITTEN_FOR.items())
            + f" and cannot adapt the installed {_installed_versions()}: "
            + "; ".join(problems)
        )
    if _installed_versions_differ():
        logger.warning(
            "realtime/daphne.py was written for %s and runs on %s; every check of the private state it uses passed. "
            "Run realtime/tests/test_daphne_adaptations.py and the real-server tests before relying on it.",
            WRITTEN_FOR,
            _installed_versions(),
        )
    _allow_protocol_close_codes()
    _fail_with_close_frames()
    _close_sockets_on_shutdown()
    _wait_for_slow_sockets()
    _expose_protocol()
    _skip_twisted_form_parsing()
    _bodies_stay_on_disk()
    if refuse_early is not None:
        _refuse_from_headers(refuse_early)
    _installed = True


def socket_writer(scope: dict[str, Any]) -> SocketWriter | None:
    """Return a direct writer for this WebSocket, or None when not served by Daphne (tests)."""
    protocol = scope.get(SCOPE_PROTOCOL_KEY)
    if protocol is None:
        return None
    from django.conf import settings

    return SocketWriter(protocol, int(settings.WS_SEND_BUFFER_MAX))


def buffered_bytes(protocol: Any) -> int:
    """Bytes written to a socket's Twisted transport and not yet taken by the kernel."""
    transport = protocol.transport
    if transport is None:
        return 0
    # A TLS transport (Daphne terminating TLS) keeps no such buffer of its own: 0.
    pending = len(getattr(transport, "dataBuffer", b"")) - getattr(transport, "offset", 0)
    return pending + getattr(transport, "_tempDataLen", 0)


class SocketWriter:
    """Writes frames prepared once (autobahn `PreparedMessage`) straight to one socket's transport."""

    __slots__ = ("factory", "limit", "protocol", "socket", "transport")

    def __init__(self, protocol: Any, limit: int) -> None:
        self.protocol = protocol
        self.factory = protocol.factory
        self.limit = limit
        self.transport = protocol.transport
        self.socket = _plain_socket(self.transport)

    def ready(self) -> bool:
        """Whether a frame may go out now: the socket is open, uncompressed, and not backed up."""
        protocol = self.protocol
        return (
            protocol.state == protocol.STATE_OPEN
            and protocol._perMessageCompress is None
            and not protocol.send_queue
            and buffered_bytes(protocol) <= self.limit
        )

    def write(self, prepared: Any) -> None:
        data = prepared.payloadHybi
        transport = self.transport
        # Twisted's write only buffers, then registers the socket for writing and
        # unregisters it once sent: two epoll calls a frame, a third of the pump's
        # time in the profile. A socket with nothing buffered can take the frame now.
        sock = self.socket
        if (
            sock is not None
            and transport.connected
            and not transport.disconnecting
            and len(transport.dataBuffer) == transport.offset
            and not transport._tempDataLen
        ):
            try:
                sent = sock.send(data)
            except OSError:
                sent = 0  # would block, or broken: Twisted's own write path sees to it
            if sent == len(data):
                return
            data = data[sent:]
        transport.write(data)

    async def drained(self) -> None:
        """Return once the socket's buffer is under the limit again (or it closed)."""
        await _until_drained(self.protocol, self.limit)


# --- The check ------------------------------------------------------------------------------------


def _installed_versions() -> dict[str, str]:
    return {name: metadata.version(name) for name in WRITTEN_FOR}


def _installed_versions_differ() -> bool:
    return _installed_versions() != WRITTEN_FOR


def _parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def private_state_problems() -> list[str]:
    """Return what is missing or different in the private state the patches use (empty when all is as expected).

    Classes are checked for the methods patched or called, with their
    parameters; a Twisted TCP connection, a Daphne WebSocket protocol and an
    autobahn prepared message are built (on a socket pair, without a
    reactor) and checked for the instance attributes read.
    """
    from autobahn.websocket.protocol import PreparedMessage
    from daphne.server import Server
    from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol
    from twisted.internet import tcp
    from twisted.internet.testing import StringTransport

    problems: list[str] = []

    def expect(condition: bool, what: str) -> None:
        if not condition:
            problems.append(what)

    def expect_method(owner: type, name: str, parameters: list[str], *, coroutine: bool = False) -> None:
        method = getattr(owner, name, None)
        if not callable(method):
            problems.append(f"{owner.__module__}.{owner.__qualname__}.{name} is gone")
            return
        found = _parameters(method)
        if found[: len(parameters)] != parameters:
            problems.append(f"{owner.__qualname__}.{name} takes {found}, not {parameters}")
        if coroutine and not inspect.iscoroutinefunction(getattr(method, "__wrapped__", method)):
            problems.append(f"{owner.__qualname__}.{name} is no longer a coroutine function")

    expect_method(Server, "handle_reply", ["self", "protocol", "message"], coroutine=True)
    expect_method(Server, "create_application", ["self", "protocol", "scope"])
    expect_method(WebSocketProtocol, "serverClose", ["self", "code"])
    expect_method(WebSocketProtocol, "onOpen", ["self"])
    expect_method(WebSocketProtocol, "sendCloseFrame", ["self", "code", "reasonUtf8", "isReply"])
    expect_method(WebSocketFactory, "__init__", ["self", "server_class"])
    expect_method(WebSocketFactory, "setProtocolOptions", ["self"])
    expect("failByDrop" in _parameters(WebSocketFactory.setProtocolOptions), "setProtocolOptions has no failByDrop")
    from twisted.web import http as twisted_http

    expect(callable(getattr(twisted_http, "_parseContentType", None)), "twisted.web.http._parseContentType is gone")
    expect(
        "_parseContentType" in twisted_http.Request.requestReceived.__code__.co_names,
        "Request.requestReceived no longer decides form parsing with _parseContentType",
    )
    expect(callable(getattr(twisted_http.Request, "gotLength", None)), "Twisted's Request no longer has gotLength")
    expect(
        {"_command", "_path"} <= set(twisted_http.HTTPChannel.lineReceived.__code__.co_names),
        "HTTPChannel no longer keeps the request line in _command and _path",
    )
    expect(
        "gotLength" in twisted_http.HTTPChannel.allHeadersReceived.__code__.co_names,
        "HTTPChannel.allHeadersReceived no longer calls gotLength",
    )
    expect(
        callable(getattr(asyncio.Queue, "_put", None)) and callable(getattr(asyncio.Queue, "_get", None)),
        "asyncio.Queue has no _put/_get to override",
    )
    for state in ("STATE_OPEN", "STATE_CLOSED"):
        expect(isinstance(getattr(WebSocketProtocol, state, None), int), f"WebSocketProtocol.{state} is not an int")
    if problems:
        return problems  # building instances would fail too

    class NoReactor:
        """Stands in for the reactor: building these objects must not install one."""

    no_reactor: Any = NoReactor()
    no_protocol: Any = None

    factory = WebSocketFactory(object(), server="check", reactor=no_reactor)
    factory.setProtocolOptions(openHandshakeTimeout=0, failByDrop=False)
    expect(factory.failByDrop is False, "WebSocketFactory ignores failByDrop")
    protocol = factory.buildProtocol(("127.0.0.1", 0))
    protocol.makeConnection(StringTransport())
    expect(protocol.factory is factory, "a Daphne protocol does not know its factory")
    expect(hasattr(protocol, "state"), "a WebSocket protocol has no state")
    expect(protocol.failByDrop is False, "a WebSocket protocol does not take failByDrop from its factory")
    expect(
        hasattr(protocol, "_perMessageCompress") and protocol._perMessageCompress is None,
        "a WebSocket protocol has no _perMessageCompress (None until compression is negotiated)",
    )
    expect(isinstance(getattr(protocol, "send_queue", None), deque), "a WebSocket protocol's send_queue is no deque")
    prepared = factory.prepareMessage(b"{}")
    expect(
        isinstance(prepared, PreparedMessage) and getattr(prepared, "payloadHybi", None) == b"\x81\x02{}",
        "a prepared message's payloadHybi is not the framed text",
    )

    left, right = stdlib_socket.socketpair()
    try:
        connection = tcp.Connection(left, no_protocol, reactor=no_reactor)
        for name, kind in (("dataBuffer", bytes), ("offset", int), ("_tempDataLen", int)):
            expect(isinstance(getattr(connection, name, None), kind), f"a Twisted connection's {name} is no {kind}")
        for name in ("connected", "disconnecting"):
            expect(hasattr(connection, name), f"a Twisted connection has no {name}")
        expect(getattr(connection, "socket", None) is left, "a Twisted connection's socket is not its socket")
        expect(not getattr(connection, "TLS", False), "a plain Twisted connection says it is TLS")
    finally:
        left.close()
        right.close()
    return problems


# --- The patches ------------------------------------------------------------------------------------


def _allow_protocol_close_codes() -> None:
    from daphne.ws_protocol import WebSocketProtocol

    original = WebSocketProtocol.serverClose

    @functools.wraps(original)
    def server_close(self: Any, code: int | None = None) -> None:
        if code in PROTOCOL_CLOSE_CODES:
            # The lower-level call sendClose makes after its (too strict) check.
            self.sendCloseFrame(code=code, reasonUtf8=None, isReply=False)
            return
        original(self, code)

    WebSocketProtocol.serverClose = server_close


def _fail_with_close_frames() -> None:
    from daphne.ws_protocol import WebSocketFactory

    original = WebSocketFactory.__init__

    @functools.wraps(original)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        # autobahn's default drops the TCP connection at once (RST): the client
        # saw 1006. Off, it sends 1009, discards the rest of the frame unread and
        # closes once the client answers (or after closeHandshakeTimeout).
        self.setProtocolOptions(failByDrop=False)

    WebSocketFactory.__init__ = init


def _close_sockets_on_shutdown() -> None:
    """Close every open WebSocket with 1012 when Daphne shuts down, before it cancels the applications."""
    if "twisted.internet.reactor" not in sys.modules:
        return  # not under Daphne (which installs its reactor before loading the application)
    from daphne.ws_protocol import WebSocketProtocol
    from twisted.internet import defer
    from twisted.internet import reactor as twisted_reactor

    # The reactor module object stands for the installed reactor; its interfaces' stubs lack `self`.
    reactor: Any = twisted_reactor
    original_open = WebSocketProtocol.onOpen

    @functools.wraps(original_open)
    def on_open(self: Any) -> None:
        _open_sockets.add(self)
        original_open(self)

    def close_all() -> Any:
        _exit_by_deadline()
        # Database calls not yet started would only hold the exit up.
        db.shutdown()
        sockets = [socket for socket in list(_open_sockets) if socket.state == socket.STATE_OPEN]
        for socket in sockets:
            socket.sendCloseFrame(code=CLOSE_SERVICE_RESTART, reasonUtf8=None, isReply=False)
        if not sockets:
            return None
        closed: Any = defer.Deferred()
        interval = 0.05

        def check(remaining: int) -> None:
            if remaining <= 0 or all(socket.state == socket.STATE_CLOSED for socket in sockets):
                closed.callback(None)
            else:
                reactor.callLater(interval, check, remaining - 1)

        check(int(SHUTDOWN_CLOSE_WAIT / interval))
        return closed

    WebSocketProtocol.onOpen = on_open
    # "before" triggers run in the order added; Daphne adds its own when it starts serving.
    reactor.addSystemEventTrigger("before", "shutdown", close_all)


def _exit_by_deadline() -> None:
    """Exit the process if it still runs settings.SHUTDOWN_DEADLINE seconds from now, saying what held it.

    Daphne cancels every application on SIGTERM and waits for all of them,
    and an application in a database call outlives its cancellation until
    the call returns (asgiref waits for the thread): a call stuck on a lock
    or a dead connection held the shutdown for good. The interpreter then
    also waits for the database threads. The deadline bounds both.
    """
    from django.conf import settings

    deadline = float(settings.SHUTDOWN_DEADLINE)

    def watchdog() -> None:
        time.sleep(deadline)
        logger.error("shutdown did not finish in %.0f s; exiting now (the threads below held it)", deadline)
        faulthandler.dump_traceback(all_threads=True)
        os._exit(1)

    threading.Thread(target=watchdog, name="shutdown-deadline", daemon=True).start()


async def _until_drained(protocol: Any, limit: int) -> None:
    # Until the client reads, or the socket closes (a 4009 from the consumer's full outbox).
    # Twisted flushes on the loop's next turn, so look again at once, then back off.
    delay = 0.0
    while protocol.state == protocol.STATE_OPEN and buffered_bytes(protocol) > limit:
        await asyncio.sleep(delay)
        delay = min(SLOW_SOCKET_POLL, delay * 2 or 0.001)


def _wait_for_slow_sockets() -> None:
    """Let a WebSocket send return only once that socket's buffer is under WS_SEND_BUFFER_MAX bytes."""
    from daphne.server import Server
    from daphne.ws_protocol import WebSocketProtocol
    from django.conf import settings

    original = Server.handle_reply

    @functools.wraps(original)
    async def handle_reply(self: Any, protocol: Any, message: dict[str, Any]) -> None:
        await original(self, protocol, message)
        if isinstance(protocol, WebSocketProtocol) and message.get("type") == "websocket.send":
            await _until_drained(protocol, int(settings.WS_SEND_BUFFER_MAX))

    Server.handle_reply = handle_reply


def _expose_protocol() -> None:
    """Put each WebSocket's Daphne protocol object in its scope (as SCOPE_PROTOCOL_KEY), and its scheme.

    Daphne's WebSocket scope has no "scheme" (ASGI's default is "ws"), so a
    socket over TLS that Daphne terminates (`make run-tls`) looked like plain
    ws:// to the Origin check (realtime.auth).
    """
    from daphne.server import Server
    from daphne.ws_protocol import WebSocketProtocol
    from twisted.internet.interfaces import ISSLTransport

    original = Server.create_application

    @functools.wraps(original)
    def create_application(self: Any, protocol: Any, scope: dict[str, Any]) -> Any:
        if isinstance(protocol, WebSocketProtocol):
            scope[SCOPE_PROTOCOL_KEY] = protocol
            scope.setdefault("scheme", "wss" if ISSLTransport.providedBy(protocol.transport) else "ws")
        return original(self, protocol, scope)

    Server.create_application = create_application


FORM_TYPES = (b"multipart/form-data", b"application/x-www-form-urlencoded")


def _skip_twisted_form_parsing() -> None:
    """Keep Twisted from parsing form bodies into `request.args`, which Daphne never reads."""
    from twisted.web import http as twisted_http

    original = twisted_http._parseContentType

    @functools.wraps(original)
    def content_type_for_args(line: bytes) -> bytes:
        key = original(line)
        # requestReceived parses the body only for these two types: for it, they are something else.
        return b"" if key in FORM_TYPES else key

    twisted_http._parseContentType = content_type_for_args


class _ChunkOnDisk:
    """Where a body chunk lies in the request's temporary file."""

    __slots__ = ("length", "offset")

    def __init__(self, offset: int, length: int) -> None:
        self.offset, self.length = offset, length


class _BodyOnDiskQueue(asyncio.Queue):  # type: ignore[type-arg]
    """An HTTP request's input queue that leaves body chunks in Twisted's temporary file until they are read.

    Daphne reads each chunk from `content` just before queueing it, so the
    chunk ends where the file now stands.
    """

    _content: Any

    def _put(self, item: Any) -> None:
        body = item.get("body") if isinstance(item, dict) and item.get("type") == "http.request" else None
        if isinstance(body, bytes) and body and not isinstance(self._content, io.BytesIO):
            item = {**item, "body": _ChunkOnDisk(self._content.tell() - len(body), len(body))}
        super()._put(item)

    def _get(self) -> Any:
        item = super()._get()
        chunk = item.get("body") if isinstance(item, dict) else None
        if isinstance(chunk, _ChunkOnDisk):
            if self._content.closed:
                # The request was abandoned before the application read its body.
                return {"type": "http.disconnect"}
            self._content.seek(chunk.offset)
            item = {**item, "body": self._content.read(chunk.length)}
        return item


def _bodies_stay_on_disk() -> None:
    """Give each HTTP request an input queue that reads its body chunks from disk as the application asks."""
    from daphne.http_protocol import WebRequest
    from daphne.server import Server

    original = Server.create_application

    @functools.wraps(original)
    def create_application(self: Any, protocol: Any, scope: dict[str, Any]) -> Any:
        queue = original(self, protocol, scope)
        if queue is not None and isinstance(protocol, WebRequest) and type(queue) is asyncio.Queue:
            queue.__class__ = _BodyOnDiskQueue
            queue._content = protocol.content  # type: ignore[attr-defined]
        return queue

    Server.create_application = create_application


def _refuse_from_headers(refuse_early: EarlyRefusal) -> None:
    """Answer a request refused by its headers (a declared size) before its body arrives."""
    from daphne.http_protocol import WebRequest
    from twisted.internet import reactor

    original = WebRequest.gotLength

    @functools.wraps(original)
    def got_length(self: Any, length: int | None) -> None:
        original(self, length)
        channel = self.channel
        method = (getattr(channel, "_command", b"") or b"").decode("latin-1")
        path = (getattr(channel, "_path", b"") or b"").decode("latin-1")
        body = refuse_early(method, path, length)
        if body is None:
            return
        # No "100 Continue" after this answer: the client must not send the body.
        self.requestHeaders.removeHeader(b"Expect")
        channel.transport.write(
            b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        # Whatever still arrives is dropped unread into nothing; closing at once could
        # reset the connection before the client reads the answer.
        channel.dataReceived = lambda data: None
        reactor.callLater(EARLY_REFUSAL_GRACE, channel.transport.loseConnection)  # type: ignore[attr-defined,arg-type]

    WebRequest.gotLength = got_length


def _plain_socket(transport: Any) -> Any:
    """Return the socket of a plain TCP transport (None under TLS, or for anything else)."""
    from twisted.internet.tcp import Connection

    if isinstance(transport, Connection) and not getattr(transport, "TLS", False):
        return transport.socket
    return None
