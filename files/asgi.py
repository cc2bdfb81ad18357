"""An ASGI gate that refuses an upload by its Content-Length, before Django reads any of the body.

Django's ASGI handler reads a whole request body (into a spooled temporary
file) before any view runs, so the view's own check comes after the bytes
were received. This answers 413 first and never calls `receive`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from files.services import too_large_error
from files.uploads import declared_too_large

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
UPLOAD_PATH = re.compile(r"^/api/v1/rooms/[0-9]{1,19}/uploads/$")


def _content_length(scope: dict[str, Any]) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def refusal_for(method: str, path: str, length: int | None) -> bytes | None:
    """The JSON body of a 413 for a request refused by its declared size alone, else None.

    Used here and by the Daphne adaptation that answers as soon as the
    headers are in (realtime/daphne.py), before any of the body is received.
    """
    if method == "POST" and UPLOAD_PATH.match(path.split("?", 1)[0]) and declared_too_large(length):
        return json.dumps({"detail": too_large_error().detail}).encode()
    return None


def upload_size_gate(app: ASGIApp) -> ASGIApp:
    async def gate(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = (
            refusal_for(scope.get("method", ""), scope.get("path", ""), _content_length(scope))
            if scope["type"] == "http"
            else None
        )
        if body is not None:
            await send(
                {
                    "type": "http.response.start",
                    "status": 413,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        # The unread body is not worth keeping the connection for.
                        (b"connection", b"close"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return gate
