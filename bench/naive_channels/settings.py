"""Settings of the naive reference: a channel layer and nothing else (no database, no apps).

Environment (bench/loadtest.py sets these):
NAIVE_REDIS_URL  the Redis the channel layer uses (default redis://127.0.0.1:6379/0)
NAIVE_LAYER      "core" (RedisChannelLayer, the tutorial's; default) or "pubsub"
NAIVE_PREFIX     the layer's key prefix, so runs never share groups
NAIVE_KEEP       messages kept in memory for ?last_event_id (default 200000)
"""

import os
import secrets

SECRET_KEY = secrets.token_urlsafe(50)
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

REDIS_URL = os.environ.get("NAIVE_REDIS_URL", "redis://127.0.0.1:6379/0")
LAYER = os.environ.get("NAIVE_LAYER", "core")
PREFIX = os.environ.get("NAIVE_PREFIX", "naive")
KEEP = int(os.environ.get("NAIVE_KEEP", "200000"))

# The tutorial's layer with its defaults (capacity 100 per channel, group
# expiry 1 day), plus the two settings without which it fails for reasons
# our server's settings already fix: redis-py 8's pool of 100 connections
# raises instead of waiting during handshake bursts, and its 5 s socket
# timeout cuts the core layer's 5 s BZPOPMIN.
_host = {"address": REDIS_URL, "max_connections": 1000}
if LAYER == "core":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{**_host, "socket_timeout": 15}], "prefix": PREFIX},
        }
    }
elif LAYER == "pubsub":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [_host], "prefix": PREFIX},
        }
    }
else:
    raise ValueError(f"NAIVE_LAYER must be 'core' or 'pubsub', not {LAYER!r}")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
