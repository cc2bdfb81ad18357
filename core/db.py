"""Database calls from async code (consumers, the event pump, the WebSocket auth).

`channels.db.database_sync_to_async` is thread-sensitive by default: every
call of a Daphne process then runs on one shared thread, in turn, so the
pump's reads, each handshake's reads and every posted message queue behind
one another (docs/performance.md has the profile). These calls share no
state with the event loop's thread, so they run in a pool of worker threads
instead; each worker takes a connection from the psycopg pool for the call
and gives it back after (CONN_MAX_AGE is 0), so no connection outlives a
call and none leaks.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from channels.db import database_sync_to_async
from django.conf import settings

from core.dbretry import call_with_retry

_executor: ThreadPoolExecutor | None = None


def _workers() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=settings.DB_WORKER_THREADS, thread_name_prefix="db")
    return _executor


async def run_db[**P, R](function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run `function(*args, **kwargs)` on a database worker thread and return its result."""
    if settings.DB_WORKER_THREADS <= 0:
        return await database_sync_to_async(call_with_retry)(function, *args, **kwargs)
    call = database_sync_to_async(call_with_retry, thread_sensitive=False, executor=_workers())
    return await call(function, *args, **kwargs)


def shutdown() -> None:
    """Drop the database calls not yet started (the process is stopping); running ones finish."""
    if _executor is not None:
        _executor.shutdown(wait=False, cancel_futures=True)
