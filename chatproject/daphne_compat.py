"""Let Daphne send the protocol close codes 1008 and 1009.

Autobahn (under Daphne) only lets an application close with 1000 or
3000–4999, so `close(1009)` for an oversized frame (API.md) came out as 1011
with a traceback. 1008 (policy violation) and 1009 (message too big) are
RFC 6455 codes a server may send; this sends them as they are.
"""

from __future__ import annotations

from typing import Any

PROTOCOL_CLOSE_CODES = {1008, 1009}


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
