"""Who is online, for apps that may not import `realtime` (the notifier in the job worker).

The realtime app provides the reader at start-up. It sees every server
process's sockets when presence is kept in Redis (REDIS_URL); on the
embedded default each process sees only its own sockets, so a worker
process sees nobody online.
"""

from __future__ import annotations

from collections.abc import Callable

_reader: Callable[[list[int]], set[int]] | None = None


def provide(reader: Callable[[list[int]], set[int]]) -> None:
    """Register the function that answers `online_among` (the realtime app does, once)."""
    global _reader
    _reader = reader


def online_among(user_ids: list[int]) -> set[int]:
    """Return those of `user_ids` with an open socket now; nobody when no reader is provided."""
    if _reader is None or not user_ids:
        return set()
    return _reader(user_ids)
