"""Who is online: a user with at least one open socket on any server process.

Kept in Redis when REDIS_URL is set (a sorted set of socket ids per user,
scored by when each socket's lease runs out), so every process agrees and a
crashed process's sockets fade out when their leases lapse. Without Redis
(the embedded default, one process) a dictionary does.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings

LEASE_SECONDS = 90
HEARTBEAT_SECONDS = 30
# A reload closes and reopens a socket within a second or two; waiting this
# long before saying "offline" keeps the dot from flickering.
OFFLINE_GRACE_SECONDS = 5.0


class _MemoryPresence:
    def __init__(self) -> None:
        self.sockets: dict[int, dict[str, float]] = {}

    async def add(self, user_id: int, socket_id: str) -> int:
        leases = self.sockets.setdefault(user_id, {})
        now = time.time()
        for stale in [socket for socket, until in leases.items() if until < now]:
            del leases[stale]
        leases[socket_id] = now + LEASE_SECONDS
        return len(leases)

    async def renew(self, sockets: list[tuple[int, str]]) -> None:
        for user_id, socket_id in sockets:
            await self.add(user_id, socket_id)

    async def remove(self, user_id: int, socket_id: str) -> None:
        self.sockets.get(user_id, {}).pop(socket_id, None)

    async def count(self, user_id: int) -> int:
        now = time.time()
        return sum(1 for until in self.sockets.get(user_id, {}).values() if until >= now)

    def online_now(self, user_ids: list[int]) -> set[int]:
        now = time.time()
        return {
            user_id for user_id in user_ids if any(until >= now for until in self.sockets.get(user_id, {}).values())
        }

    async def online(self, user_ids: list[int]) -> list[int]:
        return [user_id for user_id in user_ids if await self.count(user_id) > 0]


class _RedisPresence:
    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self.url = url
        self.redis_module = redis
        self.clients: dict[int, Any] = {}
        self.blocking_client: Any = None

    def _client(self) -> Any:
        # redis.asyncio connections belong to one event loop.
        import asyncio

        loop_id = id(asyncio.get_running_loop())
        client = self.clients.get(loop_id)
        if client is None:
            # A blocking pool: redis-py's default raises once 100 connections are
            # busy, and a reconnect storm then lost socket closes (users stuck "online").
            pool = self.redis_module.BlockingConnectionPool.from_url(self.url, max_connections=500, timeout=10)
            client = self.clients[loop_id] = self.redis_module.Redis(connection_pool=pool)
        return client

    @staticmethod
    def _key(user_id: int) -> str:
        return f"{settings.CHANNEL_PREFIX}:presence:{user_id}"

    async def add(self, user_id: int, socket_id: str) -> int:
        now = time.time()
        key = self._key(user_id)
        async with self._client().pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key, "-inf", now)
            pipe.zadd(key, {socket_id: now + LEASE_SECONDS})
            pipe.expire(key, LEASE_SECONDS * 2)
            pipe.zcard(key)
            results = await pipe.execute()
        return int(results[-1])

    async def renew(self, sockets: list[tuple[int, str]]) -> None:
        # One pipeline for every socket of the process, a few hundred at a time.
        until = time.time() + LEASE_SECONDS
        for start in range(0, len(sockets), 500):
            async with self._client().pipeline(transaction=False) as pipe:
                for user_id, socket_id in sockets[start : start + 500]:
                    key = self._key(user_id)
                    pipe.zadd(key, {socket_id: until})
                    pipe.expire(key, LEASE_SECONDS * 2)
                await pipe.execute()

    async def remove(self, user_id: int, socket_id: str) -> None:
        await self._client().zrem(self._key(user_id), socket_id)

    async def count(self, user_id: int) -> int:
        return int(await self._client().zcount(self._key(user_id), time.time(), "+inf"))

    async def online(self, user_ids: list[int]) -> list[int]:
        # One round trip for the lot: a page load asks about every visible person.
        now = time.time()
        async with self._client().pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.zcount(self._key(user_id), now, "+inf")
            counts = await pipe.execute()
        return [user_id for user_id, count in zip(user_ids, counts, strict=True) if int(count) > 0]

    def online_now(self, user_ids: list[int]) -> set[int]:
        # For sync callers (the job worker's notifier): a blocking client of its own, made once.
        if self.blocking_client is None:
            import redis

            self.blocking_client = redis.Redis.from_url(self.url)
        now = time.time()
        with self.blocking_client.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.zcount(self._key(user_id), now, "+inf")
            counts = pipe.execute()
        return {user_id for user_id, count in zip(user_ids, counts, strict=True) if int(count) > 0}


_backend: _MemoryPresence | _RedisPresence | None = None


def backend() -> _MemoryPresence | _RedisPresence:
    global _backend
    if _backend is None:
        _backend = _RedisPresence(settings.REDIS_URL) if settings.REDIS_URL else _MemoryPresence()
    return _backend


async def socket_opened(user_id: int, socket_id: str) -> bool:
    """Record a socket; return True when it is the user's only one (they just came online)."""
    return await sockets_open(user_id, socket_id) == 1


async def sockets_open(user_id: int, socket_id: str) -> int:
    """Record a socket (again: recording is idempotent); return how many the user has open on every process."""
    return await backend().add(user_id, socket_id)


async def sockets_alive(sockets: list[tuple[int, str]]) -> None:
    """Renew the leases of many (user id, socket id) at once; every process calls it every HEARTBEAT_SECONDS."""
    if sockets:
        await backend().renew(sockets)


async def socket_closed(user_id: int, socket_id: str) -> None:
    await backend().remove(user_id, socket_id)


async def is_online(user_id: int) -> bool:
    return await backend().count(user_id) > 0


def online_among_blocking(user_ids: list[int]) -> set[int]:
    """Return those of `user_ids` with an open socket, for sync code (core.presence hands it to apps)."""
    return backend().online_now(user_ids)


async def online_among(user_ids: list[int]) -> list[int]:
    """Return those of `user_ids` with at least one open socket, in the order given."""
    if not user_ids:
        return []
    return await backend().online(user_ids)
