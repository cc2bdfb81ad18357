"""HTTPS and WSS end to end against `make run-tls` (issue 5, item 1).

The test makes its own certificate authority with trustme, has it sign a
certificate for localhost, starts `make run-tls` with that certificate in
production mode (DEBUG=0) on a scratch SQLite database, and then talks to it
as a client that trusts only that authority: an HTTPS request, a
registration, a WSS connection that gets its hello, and the WSS Origin check
telling an https page of this server from an http one.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

trustme = pytest.importorskip("trustme")
websockets_client = pytest.importorskip("websockets.asyncio.client")
websockets_exceptions = pytest.importorskip("websockets.exceptions")

PROJECT_DIR = Path(__file__).resolve().parents[3]
START_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class TlsServer:
    def __init__(self, port: int, context: ssl.SSLContext, log: Path) -> None:
        self.port = port
        self.context = context
        self.log = log

    @property
    def origin(self) -> str:
        return f"https://localhost:{self.port}"

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - a fixed https URL on this machine
            self.origin + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            return urllib.request.urlopen(request, context=self.context, timeout=10)  # noqa: S310
        except urllib.error.HTTPError as error:
            return error


@pytest.fixture
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    if shutil.which("make") is None:
        pytest.skip("needs make")
    workdir = tmp_path_factory.mktemp("tls")
    authority = trustme.CA()
    leaf = authority.issue_cert("localhost", "127.0.0.1")
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    leaf.private_key_pem.write_to_path(str(key))
    # The server sends its certificate followed by the chain up to (not including) the root.
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    port = _free_port()
    env = {
        key_: value
        for key_, value in os.environ.items()
        if key_ not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DJANGO_SETTINGS_MODULE")
        and not key_.startswith("PYTEST")
    }
    env.update(
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="localhost,127.0.0.1",
        SQLITE_PATH=str(workdir / "db.sqlite3"),
        MAKEFLAGS="",
        PYTHONUNBUFFERED="1",
    )
    log = workdir / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - our own Makefile, fixed arguments
            ["make", "--no-print-directory", "run-tls", f"TLS_PORT={port}", f"TLS_CERT={cert}", f"TLS_KEY={key}"],  # noqa: S607
            cwd=PROJECT_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    context = ssl.create_default_context()
    authority.configure_trust(context)
    server = TlsServer(port, context, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"make run-tls exited with {process.returncode}:\n{log.read_text(errors='replace')}")
            try:
                with server.request("GET", "/healthz") as response:
                    if response.status == 200:
                        break
            except (OSError, ssl.SSLError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"make run-tls did not answer within {START_TIMEOUT} s:\n{log.read_text(errors='replace')}")
            time.sleep(0.2)
        yield server
    finally:
        # The server and make run in a session of their own, started here.
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def test_run_tls_serves_https_and_wss_to_clients_that_trust_its_certificate(tls_server: TlsServer) -> None:
    # One test, so that one server is started however the suite is split across workers.
    https_answers_with_hsts(tls_server)
    a_client_that_does_not_trust_the_certificate_is_refused(tls_server)
    register_over_https_then_open_a_wss_socket(tls_server)
    production_cookies_are_secure(tls_server)


def https_answers_with_hsts(tls_server: TlsServer) -> None:
    with tls_server.request("GET", "/healthz") as response:
        assert response.status == 200
        hsts = response.headers["Strict-Transport-Security"]
    assert "max-age=31536000" in hsts and "includeSubDomains" in hsts


def a_client_that_does_not_trust_the_certificate_is_refused(tls_server: TlsServer) -> None:
    untrusting = ssl.create_default_context()
    with pytest.raises(urllib.error.URLError) as caught:
        urllib.request.urlopen(f"{tls_server.origin}/healthz", context=untrusting, timeout=10)  # noqa: S310
    assert isinstance(caught.value.reason, ssl.SSLCertVerificationError)


def register_over_https_then_open_a_wss_socket(tls_server: TlsServer) -> None:
    body = {"username": "tls_user", "email": "tls@example.com", "password": "correct horse battery staple"}
    with tls_server.request("POST", "/api/v1/auth/register/", body) as response:
        assert response.status == 201
        tokens = json.load(response)

    async def hello() -> dict[str, Any]:
        async with websockets_client.connect(
            f"wss://localhost:{tls_server.port}/ws/",
            ssl=tls_server.context,
            additional_headers={"Authorization": f"Bearer {tokens['access']}"},
            open_timeout=10,
        ) as websocket:
            first = json.loads(await asyncio.wait_for(websocket.recv(), 10))
            await websocket.send(json.dumps({"type": "ping"}))
            while True:
                frame = json.loads(await asyncio.wait_for(websocket.recv(), 10))
                if frame["type"] == "pong":
                    return first

    frame = asyncio.run(hello())
    assert frame["type"] == "hello"
    assert frame["user"]["username"] == "tls_user"
    a_wss_socket_knows_its_page_is_https(tls_server, tokens["access"])


def a_wss_socket_knows_its_page_is_https(tls_server: TlsServer, access: str) -> None:
    """Daphne terminates TLS here: the Origin check must see https, not the plain http of a bare scope."""

    async def opens(origin: str) -> bool:
        try:
            async with websockets_client.connect(
                f"wss://localhost:{tls_server.port}/ws/",
                ssl=tls_server.context,
                origin=origin,  # type: ignore[arg-type]
                additional_headers={"Authorization": f"Bearer {access}"},
                open_timeout=10,
            ):
                return True
        except websockets_exceptions.InvalidStatus as refused:
            assert refused.response.status_code == 403
            return False

    assert asyncio.run(opens(tls_server.origin)) is True
    assert asyncio.run(opens(f"http://localhost:{tls_server.port}")) is False


def production_cookies_are_secure(tls_server: TlsServer) -> None:
    with tls_server.request("GET", "/admin/login/") as response:
        cookies = response.headers.get_all("Set-Cookie") or []
    csrf = [cookie for cookie in cookies if cookie.startswith("csrftoken=")]
    assert csrf and all("Secure" in cookie for cookie in csrf)
