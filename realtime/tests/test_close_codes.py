"""Through real Daphne, the protocol close codes docs/websocket.md names arrive as they are (not 1011)."""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from client.tests.test_cli import PASSWORD, chat_server  # noqa: F401 (the fixture)


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
