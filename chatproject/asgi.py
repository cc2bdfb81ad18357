"""ASGI entry point: HTTP through Django, WebSockets at /ws/ through Channels."""

import asyncio
import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")

# Load Django (apps, models) before anything that imports them.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from core.logs import ConnectionLogContext  # noqa: E402
from core.sentry import wrap_websocket  # noqa: E402
from files.asgi import refusal_for, upload_size_gate  # noqa: E402
from realtime import daphne  # noqa: E402
from realtime.auth import websocket_gate  # noqa: E402
from realtime.delivery import doorbell  # noqa: E402
from realtime.routing import websocket_urlpatterns  # noqa: E402

# Adapt Daphne (close codes, shutdown, backpressure, direct writes); refuses to start where it cannot.
# Uploads over the size limit are answered from their headers, before the body is received.
daphne.install(refuse_early=refusal_for)

router = ProtocolTypeRouter(
    {
        # An upload over the size limit is refused by its Content-Length, its body unread.
        "http": upload_size_gate(django_asgi_app),
        # Outermost: a request id for every log line of the connection, then Sentry (when on).
        "websocket": ConnectionLogContext(wrap_websocket(websocket_gate(URLRouter(websocket_urlpatterns)))),
    }
)


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    # Doorbells go out from this loop, so a committing thread never waits for them.
    doorbell.bind(asyncio.get_running_loop())
    await router(scope, receive, send)
