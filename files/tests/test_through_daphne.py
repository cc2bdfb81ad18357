"""Files through the real server: Daphne as in production, over loopback HTTP.

The bytes of a multipart upload pass through Daphne's adapted input queue
(chunks read back from Twisted's temporary file) and come back identical;
a declared size over the limit is refused before the body is sent.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
from collections.abc import Iterator

import pytest

from realtime.tests.daphne_process import DaphneProcess
from realtime.tests.realtime_support import HOST

pytestmark = pytest.mark.serial

BOUNDARY = "testboundary42"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaphneProcess]:
    workdir = tmp_path_factory.mktemp("daphne-files")
    process = DaphneProcess(workdir, MEDIA_ROOT=str(workdir / "media"), UPLOAD_MAX_BYTES=str(4 * 2**20)).start()
    try:
        yield process
    finally:
        process.kill()


def multipart(data: bytes, name: str) -> bytes:
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


def request(server: DaphneProcess, method: str, path: str, token: str, body: bytes = b"", **headers: str):  # type: ignore[no-untyped-def]
    connection = http.client.HTTPConnection(HOST, server.port, timeout=60)
    connection.request(method, path, body=body, headers={"Authorization": f"Bearer {token}", **headers})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, dict(response.getheaders()), data


def test_a_large_upload_comes_back_byte_for_byte(server: DaphneProcess) -> None:
    token = server.access_token()
    room = server.post("rooms/", token, {"name": "files-through-daphne"})
    data = os.urandom(3 * 2**20 + 12345)
    status, _, answer = request(
        server,
        "POST",
        f"/api/v1/rooms/{room['id']}/uploads/",
        token,
        multipart(data, "big.bin"),
        **{"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    assert status == 201, answer
    payload = json.loads(answer)
    assert payload["size"] == len(data)
    status, _, body = request(server, "GET", payload["url"], token)
    assert status == 200
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    status, _, body = request(server, "GET", payload["url"], token, Range="bytes=1000-1999")
    assert status == 206
    assert body == data[1000:2000]


def test_a_declared_size_over_the_limit_is_refused_before_the_body_is_sent(server: DaphneProcess) -> None:
    token = server.access_token()
    room = server.post("rooms/", token, {"name": "too-big-through-daphne"})
    connection = http.client.HTTPConnection(HOST, server.port, timeout=30)
    connection.putrequest("POST", f"/api/v1/rooms/{room['id']}/uploads/")
    connection.putheader("Authorization", f"Bearer {token}")
    connection.putheader("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")
    connection.putheader("Content-Length", str(100 * 2**20))
    connection.putheader("Expect", "100-continue")
    connection.endheaders()
    # Twisted answers once the headers are in; nothing of the 100 MiB is sent.
    response = connection.getresponse()
    assert response.status == 413
    assert "too large" in json.loads(response.read())["detail"]
    connection.close()


def test_small_json_requests_still_pass(server: DaphneProcess) -> None:
    token = server.access_token()
    room = server.post("rooms/", token, {"name": "json-still-works"})
    message = server.post(f"rooms/{room['id']}/messages/", token, {"body": "hello", "client_id": "j1"})
    assert message["body"] == "hello"
