"""SIGTERM ends a Daphne process within the drain window, whatever its sockets were doing."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from realtime.tests.daphne_process import DaphneProcess
from realtime.tests.realtime_support import live_database_url

SOCKETS = 60
FLOOD_FRAMES = 300
# Past the deadline: Daphne cancelling the applications, the reactor and the interpreter stopping.
EXIT_WITHIN = settings.SHUTDOWN_DEADLINE + 5.0
HOLD_MARKER = "hold-at-shutdown"


@pytest.fixture
def start_server(transactional_db: None, tmp_path: Path) -> Iterator[Callable[..., DaphneProcess]]:
    """Start a production-like Daphne, on the test's PostgreSQL and Redis when they are configured."""
    started: list[DaphneProcess] = []

    def start(**options: str) -> DaphneProcess:
        if os.environ.get("DATABASE_URL"):
            options.update(database_url=live_database_url(), redis_url=os.environ.get("REDIS_URL", ""))
        process = DaphneProcess(tmp_path, **options)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.kill()


async def _open(url: str, token: str) -> ClientConnection:
    socket = await connect(url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=30)
    await asyncio.wait_for(socket.recv(), 30)  # hello
    return socket


STILL_OPEN = "still open"


async def _flood_until_closed(socket: ClientConnection) -> int | str | None:
    """Flood until the server closes; return its close code, None if the connection dropped without one."""
    try:
        for _ in range(FLOOD_FRAMES):
            await socket.send('{"type": "ping"}')
        for _ in range(FLOOD_FRAMES * 2):
            await asyncio.wait_for(socket.recv(), 60)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
    return STILL_OPEN


async def _open_and_flood(
    server: DaphneProcess, token: str, count: int, *, first: str | None = None
) -> list[int | str | None]:
    """Open `count` sockets, send `first` on the first one (if given), then flood the others until closed."""
    sockets = [await _open(server.ws_url, token) for _ in range(count)]
    try:
        if first is not None:
            await sockets[0].send(first)
            sockets = sockets[1:]
        return await asyncio.gather(*(_flood_until_closed(socket) for socket in sockets))
    finally:
        await asyncio.gather(*(socket.close() for socket in sockets), return_exceptions=True)


def _flood(server: DaphneProcess, token: str) -> list[int | str | None]:
    return asyncio.run(_open_and_flood(server, token, SOCKETS))


def test_sigterm_after_a_flood_of_one_users_sockets_exits_within_the_drain_window(start_server) -> None:
    # Every one of the 60 sockets floods (the per-user socket cap would refuse most of them first).
    server = start_server(WS_MAX_SOCKETS_PER_USER=str(SOCKETS))
    token = server.access_token()
    codes = _flood(server, token)
    # The flood closed every socket (4008); under load a close frame may be cut off by the reset behind it.
    assert STILL_OPEN not in codes and set(codes) <= {4008, None} and codes.count(4008) >= SOCKETS // 2, codes

    took = server.terminate(within=EXIT_WITHIN)

    assert took is not None, f"still running {EXIT_WITHIN} s after SIGTERM:\n{server.log_text()[-4000:]}"
    assert server.process is not None and server.process.returncode == 0, server.log_text()[-4000:]


def test_sigterm_exits_by_the_deadline_even_with_a_database_call_that_never_returns(start_server) -> None:
    """An application in a database call outlives its cancellation until the call returns (asgiref waits)."""
    server = start_server(
        application="realtime.tests.hold_asgi:application",
        CHAT_TEST_HOLD_BEFORE_COMMIT=f"{HOLD_MARKER}:600",
        WS_MAX_SOCKETS_PER_USER=str(SOCKETS),
    )
    token = server.access_token()
    room = server.post("rooms/", token, {"name": "held"})
    send = {"type": "message.send", "room": room["id"], "body": HOLD_MARKER, "client_id": "held"}

    async def hold_then_flood() -> tuple[list[int | None], float | None]:
        codes = await _open_and_flood(server, token, SOCKETS, first=json.dumps(send))
        # The first socket's database call still runs: SIGTERM now.
        return codes, server.terminate(within=EXIT_WITHIN)

    codes, took = asyncio.run(hold_then_flood())

    assert STILL_OPEN not in codes and set(codes) <= {4008, None} and codes.count(4008) >= SOCKETS // 2, codes
    assert took is not None, f"still running {EXIT_WITHIN} s after SIGTERM:\n{server.log_text()[-4000:]}"
    assert "did not finish" in server.log_text()
