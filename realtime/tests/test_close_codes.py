"""Through real Daphne, the protocol close codes docs/websocket.md names arrive as they are (not 1011)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from client.tests.test_cli import PASSWORD, chat_server  # noqa: F401 (the fixture)
from realtime.tests.daphne_process import DaphneProcess


def _access_token(url: str) -> str:
    name = "c" + uuid.uuid4().hex[:8]
    body = json.dumps({"username": name, "email": f"{name}@example.com", "password": PASSWORD}).encode()
    request = urllib.request.Request(  # noqa: S310 (loopback test server)
        f"{url}/api/v1/auth/register/", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback test server)
        return str(json.load(response)["access"])


async def _close_code(ws_url: str, token: str, *, send: str | None = None) -> int | None:
    async with connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"}, max_size=None) as socket:
        await asyncio.wait_for(socket.recv(), 10)  # hello
        if send is not None:
            await socket.send(send)
        try:
            while True:
                await asyncio.wait_for(socket.recv(), 10)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
    return None


@pytest.mark.parametrize(
    ("query", "frame", "expected"),
    [
        ("", "x" * (64 * 1024 + 1), 1009),
        ("?last_event_id=abc", None, 1008),
    ],
    ids=["frame-over-64-KiB-closes-1009", "bad-cursor-closes-1008"],
)
def test_protocol_close_codes_reach_the_client_through_daphne(
    chat_server: tuple[str, dict[str, str]],  # noqa: F811
    query: str,
    frame: str | None,
    expected: int,
) -> None:
    url, _ = chat_server
    token = _access_token(url)
    ws_url = url.replace("http://", "ws://") + "/ws/" + query
    assert asyncio.run(_close_code(ws_url, token, send=frame)) == expected


# --- As in production: the Makefile's Daphne options ---------------------------------------------


@pytest.fixture(scope="module")
def production_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaphneProcess]:
    server = DaphneProcess(tmp_path_factory.mktemp("daphne"))
    try:
        yield server.start()
    finally:
        server.kill()


@pytest.mark.parametrize(
    "size",
    [64 * 1024 + 1, 128 * 1024, 128 * 1024 + 1, 1024 * 1024 + 1, 8 * 1024 * 1024],
    ids=["65-KiB", "128-KiB", "over-128-KiB", "over-1-MiB", "8-MiB"],
)
def test_a_frame_of_any_size_over_the_limit_closes_with_1009(production_server: DaphneProcess, size: int) -> None:
    """Over Daphne's own cap (128 KiB) autobahn dropped the TCP connection: the client saw 1006."""
    token = production_server.access_token()

    assert asyncio.run(_close_code(production_server.ws_url, token, send="x" * size)) == 1009


def test_frames_behind_a_flood_close_get_no_answer_and_log_no_error(production_server: DaphneProcess) -> None:
    token = production_server.access_token()

    async def flood() -> tuple[int | None, list[str]]:
        headers = {"Authorization": f"Bearer {token}"}
        async with connect(production_server.ws_url, additional_headers=headers) as socket:
            await asyncio.wait_for(socket.recv(), 10)  # hello
            # All at once, so most are queued in the server when it closes with 4008.
            await asyncio.gather(*(socket.send('{"type": "ping"}') for _ in range(300)))
            frames: list[str] = []
            try:
                for _ in range(1000):
                    frames.append(str(await asyncio.wait_for(socket.recv(), 10)))
            except ConnectionClosed as closed:
                return (closed.rcvd.code if closed.rcvd else None), frames
        return None, frames

    code, frames = asyncio.run(flood())

    assert code == 4008
    assert len(frames) < 300  # the frames after the close were not answered
    time.sleep(0.5)  # the server's log lines of the close, written after the client saw it
    log = production_server.log_text()
    assert "Traceback" not in log and "ERROR" not in log.upper().replace("'ERROR'", ""), log[-3000:]
