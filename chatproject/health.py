"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

import asyncio
import logging

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


async def _channel_layer_roundtrip() -> bool:
    layer = get_channel_layer()
    if layer is None:
        return False
    channel = await layer.new_channel("readyz.")
    await layer.send(channel, {"type": "readyz.ping"})
    message = await layer.receive(channel)
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
