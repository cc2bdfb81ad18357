"""The handshake's Origin check: a browser page may open a socket only from this server's own origin
(scheme, host and port, as the handshake shows them) or from CSRF_TRUSTED_ORIGINS.

A page on another port or over another scheme of the same host is another
origin (another application, perhaps someone else's), and must not ride on
the visitor's session cookie.
"""

from __future__ import annotations

from typing import Any

import pytest

from realtime.tests.test_consumers import (  # noqa: F401 (fixtures: used by name)
    _fresh_realtime_state,
    asynctest,
    bearer,
    call,
    handshake,
    session_cookie,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def accepted(user: Any, *, host: bytes, origin: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> bool:
    cookie = await call(session_cookie, user)
    _, connected = await handshake([(b"host", host), (b"origin", origin), cookie, *(extra or [])])
    return connected


@asynctest
async def test_a_page_of_this_server_gets_a_socket(alice) -> None:
    assert await accepted(alice, host=b"127.0.0.1:8000", origin=b"http://127.0.0.1:8000")
    assert await accepted(alice, host=b"localhost", origin=b"http://localhost")
    assert await accepted(alice, host=b"LOCALHOST:8000", origin=b"http://localhost:8000")


@asynctest
async def test_a_page_on_the_same_host_but_another_port_is_refused(alice) -> None:
    for origin in (b"http://127.0.0.1:8001", b"http://127.0.0.1", b"http://127.0.0.1:80"):
        assert not await accepted(alice, host=b"127.0.0.1:8000", origin=origin), origin
    assert not await accepted(alice, host=b"localhost", origin=b"http://localhost:5173")


@asynctest
async def test_a_page_on_the_same_host_and_port_over_another_scheme_is_refused(alice) -> None:
    assert not await accepted(alice, host=b"127.0.0.1:8000", origin=b"https://127.0.0.1:8000")
    assert not await accepted(alice, host=b"localhost", origin=b"https://localhost")


@asynctest
async def test_behind_a_tls_proxy_the_origin_is_https(alice, settings) -> None:
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    over_tls = [(b"x-forwarded-proto", b"https")]
    assert await accepted(alice, host=b"localhost", origin=b"https://localhost", extra=over_tls)
    assert not await accepted(alice, host=b"localhost", origin=b"http://localhost", extra=over_tls)
    # Without the header the connection was plain HTTP, as Django's is_secure() decides.
    assert await accepted(alice, host=b"localhost", origin=b"http://localhost")
    assert not await accepted(alice, host=b"localhost", origin=b"https://localhost")


@asynctest
async def test_the_own_origin_counts_only_for_a_host_the_server_answers_to(alice) -> None:
    assert not await accepted(alice, host=b"evil.example", origin=b"http://evil.example")
    assert not await accepted(alice, host=b"127.0.0.1.nip.io", origin=b"http://127.0.0.1.nip.io")


@asynctest
async def test_a_trusted_origin_gets_a_socket_with_its_exact_scheme_and_port(alice, settings) -> None:
    settings.CSRF_TRUSTED_ORIGINS = ["https://chat.example.com", "https://*.example.org:8443"]
    host = b"127.0.0.1:8000"
    assert await accepted(alice, host=host, origin=b"https://chat.example.com")
    assert await accepted(alice, host=host, origin=b"https://chat.example.com:443")
    assert await accepted(alice, host=host, origin=b"https://team.example.org:8443")
    assert await accepted(alice, host=host, origin=b"https://example.org:8443")
    for origin in (
        b"http://chat.example.com",
        b"https://chat.example.com:8443",
        b"https://evil.chat.example.com",
        b"https://team.example.org",
        b"https://example.org.evil.example:8443",
    ):
        assert not await accepted(alice, host=host, origin=origin), origin


@asynctest
async def test_a_malformed_origin_is_refused(alice) -> None:
    for origin in (b"null", b"http://127.0.0.1:8000/path", b"http://user@127.0.0.1:8000", b"http://127.0.0.1:99999"):
        assert not await accepted(alice, host=b"127.0.0.1:8000", origin=origin), origin


@asynctest
async def test_a_handshake_without_origin_is_not_a_browser_and_goes_on_to_authentication(alice) -> None:
    _, connected = await handshake([(b"host", b"127.0.0.1:8000"), bearer(alice)])
    assert connected is True
