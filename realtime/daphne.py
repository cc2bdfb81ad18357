"""Let Daphne send the protocol close codes 1008 and 1009, and 1012 on shutdown.

Autobahn (under Daphne) only lets an application close with 1000 or
3000–4999, so `close(1009)` for an oversized frame (docs/websocket.md) came out as 1011
with a traceback. 1008 (policy violation) and 1009 (message too big) are
RFC 6455 codes a server may send; this sends them as they are.

On SIGTERM Daphne cancels every application and stops the reactor, so its
sockets just drop (clients saw 1006). `close_sockets_on_shutdown` first
sends every open socket a close frame with 1012 (service restart) and waits
up to SHUTDOWN_CLOSE_WAIT seconds for the closing handshakes.

Daphne writes whatever an application sends into Twisted's buffer at once,
so a client that stops reading grew server memory without bound and the
consumer's send queue (and its 4009) never filled. `wait_for_slow_sockets`
makes a WebSocket send wait while more than settings.WS_SEND_BUFFER_MAX bytes
are buffered for that socket: the consumer's outbox then fills and drops it.

The event pump writes one event to hundreds of sockets. Through the ASGI
`send` each write is a coroutine, a Daphne dispatch, and autobahn framing
the same text again; `expose_protocol` puts Daphne's protocol object in the
scope so that `SocketWriter` can write a frame prepared once for all of them
straight to the socket's transport (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import sys
import threading
import time
import weakref
from typing import Any

from core import db

logger = logging.getLogger(__name__)

PROTOCOL_CLOSE_CODES = {1008, 1009}
CLOSE_SERVICE_RESTART = 1012
SHUTDOWN_CLOSE_WAIT = 1.0

_open_sockets: weakref.WeakSet[Any] = weakref.WeakSet()


def allow_protocol_close_codes() -> None:
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # not running under Daphne
        return
    if getattr(WebSocketProtocol, "_chat_close_codes_patched", False):
        return
    original = WebSocketProtocol.serverClose

    def server_close(self: Any, code: int | None = None) -> None:
        if code in PROTOCOL_CLOSE_CODES:
            # The lower-level call sendClose makes after its (too strict) check.
            self.sendCloseFrame(code=code, reasonUtf8=None, isReply=False)
            return
        original(self, code)

    WebSocketProtocol.serverClose = server_close
    WebSocketProtocol._chat_close_codes_patched = True


def fail_with_close_frames() -> None:
    """Make autobahn end a failed connection (a frame over Daphne's size cap) with a close frame, not a TCP drop."""
    try:
        from daphne.ws_protocol import WebSocketFactory
    except ImportError:
        return
    if getattr(WebSocketFactory, "_chat_fail_patched", False):
        return
    original = WebSocketFactory.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        # autobahn's default drops the TCP connection at once (RST): the client
        # saw 1006. Off, it sends 1009, discards the rest of the frame unread and
        # closes once the client answers (or after closeHandshakeTimeout).
        self.setProtocolOptions(failByDrop=False)

    WebSocketFactory.__init__ = init
    WebSocketFactory._chat_fail_patched = True


def close_sockets_on_shutdown() -> None:
    """Close every open WebSocket with 1012 when Daphne shuts down, before it cancels the applications."""
    if "twisted.internet.reactor" not in sys.modules:
        return  # not under Daphne (which installs its reactor before loading the application)
    try:
        from daphne.ws_protocol import WebSocketProtocol
        from twisted.internet import defer
        from twisted.internet import reactor as twisted_reactor
    except ImportError:
        return
    # The reactor module object stands for the installed reactor; its interfaces' stubs lack `self`.
    reactor: Any = twisted_reactor
    if getattr(WebSocketProtocol, "_chat_shutdown_patched", False):
        return
    original_open = WebSocketProtocol.onOpen

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
    WebSocketProtocol._chat_shutdown_patched = True
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


SLOW_SOCKET_POLL = 0.05


def _buffered_bytes(protocol: Any) -> int:
    """Bytes written to a Twisted transport and not yet taken by the kernel."""
    transport = protocol.transport
    if transport is None:
        return 0
    pending = len(getattr(transport, "dataBuffer", b"")) - getattr(transport, "offset", 0)
    return pending + getattr(transport, "_tempDataLen", 0)


def wait_for_slow_sockets() -> None:
    """Let a WebSocket send return only once that socket's buffer is under WS_SEND_BUFFER_MAX bytes."""
    try:
        from daphne.server import Server
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:
        return
    if getattr(Server, "_chat_backpressure_patched", False):
        return
    from django.conf import settings

    original = Server.handle_reply

    async def handle_reply(self: Any, protocol: Any, message: dict[str, Any]) -> None:
        await original(self, protocol, message)
        if not isinstance(protocol, WebSocketProtocol) or message.get("type") != "websocket.send":
            return
        limit = int(settings.WS_SEND_BUFFER_MAX)
        # Until the client reads, or the socket closes (a 4009 from the consumer's full outbox).
        # Twisted flushes on the loop's next turn, so look again at once, then back off.
        delay = 0.0
        while protocol.state == protocol.STATE_OPEN and _buffered_bytes(protocol) > limit:
            await asyncio.sleep(delay)
            delay = min(SLOW_SOCKET_POLL, delay * 2 or 0.001)

    Server.handle_reply = handle_reply
    Server._chat_backpressure_patched = True


SCOPE_PROTOCOL_KEY = "chat.daphne_protocol"


def expose_protocol() -> None:
    """Put each WebSocket's Daphne protocol object in its scope (as SCOPE_PROTOCOL_KEY)."""
    try:
        from daphne.server import Server
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:
        return
    if getattr(Server, "_chat_expose_patched", False):
        return
    original = Server.create_application

    def create_application(self: Any, protocol: Any, scope: dict[str, Any]) -> Any:
        if isinstance(protocol, WebSocketProtocol):
            scope[SCOPE_PROTOCOL_KEY] = protocol
        return original(self, protocol, scope)

    Server.create_application = create_application
    Server._chat_expose_patched = True


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
            and _buffered_bytes(protocol) <= self.limit
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
        protocol = self.protocol
        delay = 0.0
        while protocol.state == protocol.STATE_OPEN and _buffered_bytes(protocol) > self.limit:
            await asyncio.sleep(delay)
            delay = min(SLOW_SOCKET_POLL, delay * 2 or 0.001)


def _plain_socket(transport: Any) -> Any:
    """Return the socket of a plain TCP transport (None under TLS, or for anything else)."""
    try:
        from twisted.internet.tcp import Connection
    except ImportError:
        return None
    if isinstance(transport, Connection) and not getattr(transport, "TLS", False):
        return transport.socket
    return None


def socket_writer(scope: dict[str, Any]) -> SocketWriter | None:
    """Return a direct writer for this WebSocket, or None when not served by Daphne (tests)."""
    protocol = scope.get(SCOPE_PROTOCOL_KEY)
    if protocol is None:
        return None
    from django.conf import settings

    return SocketWriter(protocol, int(settings.WS_SEND_BUFFER_MAX))
