"""Settings read the environment: embedded defaults, service URLs, and a refusal to run production unsafely.

Each case imports the settings module in a fresh interpreter, because settings
are read once per process and the test process has already loaded its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTROLLED = (
    "DATABASE_URL",
    "REDIS_URL",
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "CHANNEL_LAYER",
    "CHANNEL_CAPACITY",
    "CHANNEL_GROUP_EXPIRY",
)
GOOD_SECRET = "k9Qz-7vR2mXw4LpT8sYb1NcJ6hFd3GaE5uKo0iVn_WqZr2TyUx"  # 50 characters, many distinct

PROBE = """
import json
from django.conf import settings
db = settings.DATABASES["default"]
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "ENGINE": db["ENGINE"],
    "DB_OPTIONS": db.get("OPTIONS", {}),
    "DB_NAME": db["NAME"],
    "CHANNEL_BACKEND": settings.CHANNEL_LAYERS["default"]["BACKEND"],
    "CHANNEL_CONFIG": settings.CHANNEL_LAYERS["default"].get("CONFIG", {}),
    "CACHE_BACKEND": settings.CACHES["default"]["BACKEND"],
    "CACHE_LOCATION": settings.CACHES["default"].get("LOCATION", ""),
    "ALLOWED_HOSTS": settings.ALLOWED_HOSTS,
    "SECRET_KEY_LENGTH": len(settings.SECRET_KEY),
}, default=lambda value: getattr(value, "__qualname__", repr(value))))
"""


def run_settings(**overrides: str) -> subprocess.CompletedProcess[str]:
    """Import chatproject.settings in a new interpreter with only `overrides` of the controlled variables set."""
    env = {name: value for name, value in os.environ.items() if name not in CONTROLLED}
    env["DJANGO_SETTINGS_MODULE"] = "chatproject.settings"
    env.update(overrides)
    return subprocess.run(  # noqa: S603 - fixed interpreter and arguments
        [sys.executable, "-c", PROBE],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def loaded(**overrides: str) -> dict[str, Any]:
    result = run_settings(**overrides)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def refused(**overrides: str) -> str:
    result = run_settings(**overrides)
    assert result.returncode != 0, f"settings loaded but should have been refused: {result.stdout}"
    assert "ImproperlyConfigured" in result.stderr, result.stderr
    return result.stderr.strip().splitlines()[-1]


def test_nothing_set_runs_on_embedded_defaults() -> None:
    config = loaded()

    assert config["DEBUG"] is True
    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["CHANNEL_BACKEND"] == "channels.layers.InMemoryChannelLayer"
    assert config["CACHE_BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
    assert config["SECRET_KEY_LENGTH"] >= 50
    assert "localhost" in config["ALLOWED_HOSTS"]


def test_database_url_switches_to_pooled_postgresql() -> None:
    config = loaded(DATABASE_URL="postgres://u@h:5432/db")

    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert config["DB_NAME"] == "db"
    pool = config["DB_OPTIONS"]["pool"]
    assert pool["min_size"] >= 1
    assert pool["max_size"] >= pool["min_size"]
    assert pool["check"] == "check_pooled_connection"  # a connection killed while idle is replaced before use


@pytest.mark.parametrize("url", ["mysql://u:p@h:3306/db", "sqlite:////tmp/chat.sqlite3", "oracle://u:p@h:1521/db"])
def test_non_postgres_database_url_is_refused(url: str) -> None:
    assert "DATABASE_URL" in refused(DATABASE_URL=url)


def test_redis_url_switches_channel_layer_and_cache_to_redis() -> None:
    config = loaded(REDIS_URL="redis://127.0.0.1:6379/3")

    # The pub/sub layer, chosen by measurement (docs/performance.md).
    assert config["CHANNEL_BACKEND"] == "channels_redis.pubsub.RedisPubSubChannelLayer"
    assert config["CHANNEL_CONFIG"]["hosts"][0]["address"] == "redis://127.0.0.1:6379/3"
    # A large pool: the default 100 raises under bursts of handshakes.
    assert config["CHANNEL_CONFIG"]["hosts"][0]["max_connections"] >= 1000
    # Its constructor swallows unknown options: the core layer's would be silently ignored.
    assert "capacity" not in config["CHANNEL_CONFIG"]
    assert "group_expiry" not in config["CHANNEL_CONFIG"]
    assert config["CACHE_BACKEND"] == "core.cache.SharedPoolRedisCache"
    assert config["CACHE_LOCATION"] == "redis://127.0.0.1:6379/3"


def test_channel_layer_core_selects_the_list_based_layer_with_its_limits() -> None:
    config = loaded(
        REDIS_URL="redis://127.0.0.1:6379/3", CHANNEL_LAYER="core", CHANNEL_CAPACITY="500", CHANNEL_GROUP_EXPIRY="3600"
    )

    assert config["CHANNEL_BACKEND"] == "channels_redis.core.RedisChannelLayer"
    assert config["CHANNEL_CONFIG"]["capacity"] == 500
    assert config["CHANNEL_CONFIG"]["group_expiry"] == 3600
    assert config["CHANNEL_CONFIG"]["hosts"][0]["max_connections"] >= 1000


def test_unknown_channel_layer_is_refused() -> None:
    assert "CHANNEL_LAYER" in refused(REDIS_URL="redis://127.0.0.1:6379/3", CHANNEL_LAYER="rabbitmq")


def test_production_without_secret_key_is_refused() -> None:
    assert "SECRET_KEY" in refused(DEBUG="0", ALLOWED_HOSTS="chat.example.com")


@pytest.mark.parametrize("secret", ["short", "a" * 64])
def test_production_with_a_weak_secret_key_is_refused(secret: str) -> None:
    assert "SECRET_KEY" in refused(DEBUG="0", SECRET_KEY=secret, ALLOWED_HOSTS="chat.example.com")


def test_production_without_allowed_hosts_is_refused() -> None:
    assert "ALLOWED_HOSTS" in refused(DEBUG="0", SECRET_KEY=GOOD_SECRET)


def test_production_with_secret_and_hosts_starts() -> None:
    config = loaded(DEBUG="0", SECRET_KEY=GOOD_SECRET, ALLOWED_HOSTS="chat.example.com,www.example.com")

    assert config["DEBUG"] is False
    assert config["ALLOWED_HOSTS"] == ["chat.example.com", "www.example.com"]
    assert config["SECRET_KEY_LENGTH"] == len(GOOD_SECRET)
