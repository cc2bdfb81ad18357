"""Django's Redis cache with one connection pool per process instead of one per cache object.

Django makes a new cache object for every async context (`caches` is
context-local under ASGI): each request, and each database call a consumer
hands to a worker thread. Its Redis client keeps its connection pool on the
object, and `close()` does nothing, so every such context opened a new TCP
connection to Redis (a connect, a DNS lookup and a handshake) and left it
for the garbage collector. Profiled at 300 posts a second, that was a third
of the server's busy time (docs/performance.md). Sharing the pools per
process makes a cache call one round trip on a pooled connection.

`SharedPoolRedisCache.count_in_window` and `acount_in_window` are the
counters of per-user budgets (core.ratelimit): one round trip each, the
second on an asyncio connection so a socket's frame never waits for a thread.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

_pools: dict[tuple[str, str], Any] = {}
_pools_lock = threading.Lock()


class SharedPoolClient(RedisCacheClient):
    def _get_connection_pool(self, write: bool) -> Any:
        client: Any = self  # the attributes below are Django's, missing from its stubs
        server = client._servers[client._get_connection_pool_index(write)]
        options = client._pool_options
        key = (server, repr(sorted(options.items())))
        pool = _pools.get(key)
        if pool is None:
            with _pools_lock:
                pool = _pools.get(key)
                if pool is None:
                    pool = _pools[key] = client._pool_class.from_url(server, **options)
        return pool


class SharedPoolRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = SharedPoolClient

    def count_in_window(self, key: str, window: int) -> int:
        """Add one to the counter `key`, which lives `window` seconds from its first count; return it."""
        full_key = self.make_and_validate_key(key)
        client = self._cache.get_client(full_key, write=True)  # type: ignore[attr-defined]
        # One round trip: create the counter with its expiry if it is new, then count.
        with client.pipeline(transaction=True) as pipe:
            pipe.set(full_key, 0, ex=window, nx=True)
            pipe.incr(full_key)
            return int(pipe.execute()[-1])

    async def acount_in_window(self, key: str, window: int) -> int:
        """`count_in_window` on this event loop's own connection, without a thread hop."""
        full_key = self.make_and_validate_key(key)
        async with _async_client(self._server_url).pipeline(transaction=True) as pipe:
            pipe.set(full_key, 0, ex=window, nx=True)
            pipe.incr(full_key)
            results = await pipe.execute()
        return int(results[-1])

    @property
    def _server_url(self) -> str:
        servers: list[str] = self._servers  # type: ignore[attr-defined]
        return servers[0]


# redis.asyncio connections belong to one event loop: a client per loop and server.
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Any]] = weakref.WeakKeyDictionary()


def _async_client(url: str) -> Any:
    import redis.asyncio as redis

    clients = _async_clients.setdefault(asyncio.get_running_loop(), {})
    client = clients.get(url)
    if client is None:
        pool = redis.BlockingConnectionPool.from_url(url, max_connections=100, timeout=10)
        client = clients[url] = redis.Redis(connection_pool=pool)
    return client


async def close_async_clients() -> None:
    """Close this event loop's Redis connections (a test ends its loop after this)."""
    for client in _async_clients.pop(asyncio.get_running_loop(), {}).values():
        await client.aclose()
