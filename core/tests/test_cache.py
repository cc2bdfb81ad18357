"""The Redis cache backend shares one connection pool per process (core.cache)."""

from __future__ import annotations

import asyncio

from asgiref.sync import sync_to_async

from core.cache import SharedPoolRedisCache

URL = "redis://127.0.0.1:6379/0"


def pool_of(cache: SharedPoolRedisCache) -> object:
    return cache._cache.get_client(write=True).connection_pool  # type: ignore[attr-defined]


def test_two_cache_objects_use_one_connection_pool() -> None:
    # Django makes a cache object per async context: per request, per worker-thread call.
    first, second = SharedPoolRedisCache(URL, {}), SharedPoolRedisCache(URL, {})

    assert first is not second
    assert pool_of(first) is pool_of(second)


def test_caches_of_concurrent_worker_thread_calls_share_the_pool() -> None:
    def pool_in_a_worker() -> object:
        return pool_of(SharedPoolRedisCache(URL, {}))

    async def main() -> list[object]:
        call = sync_to_async(pool_in_a_worker, thread_sensitive=False)
        return list(await asyncio.gather(*(call() for _ in range(8))))

    pools = asyncio.run(main())

    assert len({id(pool) for pool in pools}) == 1


def test_another_server_or_database_gets_its_own_pool() -> None:
    assert pool_of(SharedPoolRedisCache(URL, {})) is not pool_of(SharedPoolRedisCache("redis://127.0.0.1:6379/5", {}))
