"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection
from django.http import HttpRequest, JsonResponse

logger = logging.getLogger(__name__)

READINESS_TIMEOUT = 2.0


def healthz(request: HttpRequest) -> JsonResponse:
    """Answer 200 while the process runs."""
    return JsonResponse({"status": "ok"})


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:
        logger.warning("readiness: database unreachable", exc_info=True)
        return False


# The channel of the last probe that came back, as (layer, event loop, channel).
# Reused while probes succeed: the pub/sub layer keeps every channel it creates
# subscribed until a receive on it is cancelled, so a new channel per probe
# would leave one subscription behind per probe, forever.
_probe_channel: tuple[Any, asyncio.AbstractEventLoop, str] | None = None


async def _channel_layer_roundtrip() -> bool:
    global _probe_channel
    layer = get_channel_layer()
    if layer is None:
        return False
    loop = asyncio.get_running_loop()
    cached, _probe_channel = _probe_channel, None
    if cached is not None and cached[0] is layer and cached[1] is loop:
        channel = cached[2]
    else:
        # A probe that timed out had its receive cancelled (pub/sub then drops the channel): start afresh.
        # The sockets' prefix: the core layer reads every local channel of one prefix
        # through one shared BZPOPMIN, and a channel of another prefix waits behind
        # that read (readyz answered 503 whenever sockets were open).
        channel = await layer.new_channel()
    await layer.send(channel, {"type": "readyz.ping"})
    message = await layer.receive(channel)
    _probe_channel = (layer, loop, channel)
    return message.get("type") == "readyz.ping"


def _channel_layer_ok() -> bool:
    async def probe() -> bool:
        return await asyncio.wait_for(_channel_layer_roundtrip(), READINESS_TIMEOUT)

    try:
        return async_to_sync(probe)()
    except Exception:
        logger.warning("readiness: channel layer unreachable", exc_info=True)
        return False


def readyz(request: HttpRequest) -> JsonResponse:
    """Answer 200 only when the database and the channel layer both answer, else 503."""
    checks = {"database": _database_ok(), "channel_layer": _channel_layer_ok()}
    ready = all(checks.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)
