"""System checks for settings that only fail at run time, long after start-up."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register

CORE_LAYER = "channels_redis.core.RedisChannelLayer"
DEFAULT_GROUP_EXPIRY = 86400  # channels-redis's own default


@register(Tags.compatibility)
def channel_group_expiry(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The core layer's group_expiry must exceed CHANNEL_GROUP_REFRESH, or sockets silently lose their groups."""
    layer = getattr(settings, "CHANNEL_LAYERS", {}).get("default", {})
    if layer.get("BACKEND") != CORE_LAYER:
        return []
    expiry = layer.get("CONFIG", {}).get("group_expiry", DEFAULT_GROUP_EXPIRY)
    refresh = float(getattr(settings, "CHANNEL_GROUP_REFRESH", 60.0))
    if expiry <= refresh:
        return [
            Error(
                f"The core channel layer's group_expiry ({expiry} s) is at or below "
                f"CHANNEL_GROUP_REFRESH ({refresh:g} s): open sockets would drop out of their "
                "room groups between refreshes and stop getting typing, presence and 4003.",
                hint="Raise CHANNEL_GROUP_EXPIRY or lower CHANNEL_GROUP_REFRESH (about half the expiry).",
                id="chat.E001",
            )
        ]
    return []


@register(Tags.compatibility)
def send_rate(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """USER_SEND_RATE must parse, or every post and typing notice would fail at run time."""
    from core.ratelimit import parse_rate

    rate = getattr(settings, "USER_SEND_RATE", "30/10s")
    try:
        count, seconds = parse_rate(rate)
    except (TypeError, ValueError):
        count, seconds = 0, 0
    if count < 1 or seconds < 1:
        return [
            Error(
                f"USER_SEND_RATE is {rate!r}: a rate is 'count/period', a count of at least 1 and a period "
                "like 10s, m or 1h.",
                hint='For example USER_SEND_RATE="30/10s".',
                id="chat.E002",
            )
        ]
    return []
