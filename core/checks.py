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
