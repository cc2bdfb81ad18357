"""Fixtures for realtime tests: real server processes on loopback, on the shared or a private Redis."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from realtime.tests.realtime_support import ServerPool, ThrowawayRedis, live_database_url, server_env

# --- Real server processes (test_realtime_servers.py, test_faults.py) ---------------------


def _pool(tmp_path: Path, redis_url: str) -> Iterator[ServerPool]:
    prefix = f"rt{uuid.uuid4().hex[:12]}"
    pool = ServerPool(
        tmp_path, server_env(database_url=live_database_url(), redis_url=redis_url, channel_prefix=prefix)
    )
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def pool(transactional_db: None, tmp_path: Path) -> Iterator[ServerPool]:
    """Server processes on the shared Redis (REDIS_URL), killed after the test."""
    yield from _pool(tmp_path, os.environ["REDIS_URL"])


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    """A private redis-server on a free port that the test may restart."""
    executable = shutil.which("redis-server")
    if executable is None:
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail("redis-server is not on PATH")
        pytest.skip("redis-server is not on PATH")
    redis = ThrowawayRedis(tmp_path, executable)
    redis.start()
    try:
        yield redis
    finally:
        redis.close()


@pytest.fixture
def pool_on_own_redis(transactional_db: None, tmp_path: Path, own_redis: ThrowawayRedis) -> Iterator[ServerPool]:
    yield from _pool(tmp_path, own_redis.url)
