"""Django's Redis cache with one connection pool per process instead of one per cache object.

Django makes a new cache object for every async context (`caches` is
context-local under ASGI): each request, and each database call a consumer
hands to a worker thread. Its Redis client keeps its connection pool on the
object, and `close()` does nothing, so every such context opened a new TCP
connection to Redis (a connect, a DNS lookup and a handshake) and left it
for the garbage collector. Profiled at 300 posts a second, that was a third
of the server's busy time (docs/performance.md). Sharing the pools per
process makes a cache call one round trip on a pooled connection.
"""

from __future__ import annotations

import threading
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
