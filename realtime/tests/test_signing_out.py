"""Signing out ends the sockets of that sign-in at once (4001), and tokens taken back open none.

A browser session's log-out closes the sockets it opened; `POST auth/logout/`
closes those opened with tokens of that sign-in (its token family); signing
out everywhere, a new password and an admin's password reset close every
socket of the user; a refresh token presented twice closes those of its
sign-in. Nobody else's socket is touched.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts import services as accounts
from conftest import PASSWORD
from realtime.tests.test_consumers import (  # noqa: F401 (fixtures: used by name)
    ORIGIN,
    _fresh_realtime_state,
    asynctest,
    bearer,
    call,
    connect,
    handshake,
)

pytestmark = pytest.mark.django_db(transaction=True)

CLOSE_SIGNED_OUT = 4001


def browser(user: Any) -> tuple[Client, tuple[bytes, bytes]]:
    """Log in through the web page; return the browser and its session cookie header."""
    client = Client()
    response = client.post("/login/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302, response
    return client, (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


def token_header(access: str) -> tuple[bytes, bytes]:
    return (b"authorization", f"Bearer {access}".encode())


async def closed_with(socket: Any) -> int | None:
    code, _ = await socket.close_code()
    return code


@asynctest
async def test_web_logout_closes_the_sockets_of_that_browser_session_only(alice, bob) -> None:
    laptop, laptop_cookie = await call(browser, alice)
    _, phone_cookie = await call(browser, alice)
    laptop_sockets = [await connect(alice, headers=[laptop_cookie, ORIGIN]) for _ in range(2)]
    phone_socket = await connect(alice, headers=[phone_cookie, ORIGIN])
    token_socket = await connect(alice)
    bob_socket = await connect(bob)

    response = await call(laptop.post, "/logout/")
    assert response.status_code == 302

    assert [await closed_with(socket) for socket in laptop_sockets] == [CLOSE_SIGNED_OUT, CLOSE_SIGNED_OUT]
    for socket in (phone_socket, token_socket, bob_socket):
        await socket.pong()
    _, connected = await handshake([laptop_cookie, ORIGIN])
    assert connected is False


@asynctest
async def test_api_logout_closes_the_sockets_of_that_sign_in_only(alice, bob, client_for) -> None:
    signed_out = await call(accounts.tokens_for, alice)
    other = await call(accounts.tokens_for, alice)
    _, cookie = await call(browser, alice)
    socket = await connect(alice, headers=[token_header(signed_out["access"]), ORIGIN])
    other_socket = await connect(alice, headers=[token_header(other["access"]), ORIGIN])
    session_socket = await connect(alice, headers=[cookie, ORIGIN])

    def log_out() -> int:
        client = client_for(alice)
        return client.post("/api/v1/auth/logout/", {"refresh": signed_out["refresh"]}, format="json").status_code

    assert await call(log_out) == 205
    assert await closed_with(socket) == CLOSE_SIGNED_OUT
    await other_socket.pong()
    await session_socket.pong()
    # The sign-in's access token opens no new socket either, though it has not expired.
    _, connected = await handshake([token_header(signed_out["access"]), ORIGIN])
    assert connected is False
    _, connected = await handshake([token_header(other["access"]), ORIGIN])
    assert connected is True


@asynctest
async def test_sign_out_everywhere_closes_every_socket_of_the_user(alice, bob, client_for) -> None:
    tokens = await call(accounts.tokens_for, alice)
    _, cookie = await call(browser, alice)
    sockets = [
        await connect(alice, headers=[token_header(tokens["access"]), ORIGIN]),
        await connect(alice, headers=[cookie, ORIGIN]),
        await connect(alice),
    ]
    bob_socket = await connect(bob)

    def everywhere() -> int:
        client = client_for(alice)
        body = {"refresh": tokens["refresh"], "everywhere": True}
        return client.post("/api/v1/auth/logout/", body, format="json").status_code

    assert await call(everywhere) == 205
    assert [await closed_with(socket) for socket in sockets] == [CLOSE_SIGNED_OUT] * 3
    await bob_socket.pong()
    # Neither the token nor the browser session opens a socket any more.
    for credentials in (token_header(tokens["access"]), bearer(alice), cookie):
        _, connected = await handshake([credentials, ORIGIN])
        assert connected is False, credentials


@asynctest
async def test_sign_out_everywhere_on_the_profile_page_closes_every_socket(alice) -> None:
    page, cookie = await call(browser, alice)
    sockets = [await connect(alice, headers=[cookie, ORIGIN]), await connect(alice)]
    response = await call(page.post, "/profile/", {"form": "everywhere"})
    assert response.status_code == 302
    assert response["Location"] == "/login/"
    assert [await closed_with(socket) for socket in sockets] == [CLOSE_SIGNED_OUT] * 2


@asynctest
async def test_a_password_change_closes_every_socket_and_refuses_older_tokens(alice, bob) -> None:
    page, cookie = await call(browser, alice)
    sockets = [await connect(alice, headers=[cookie, ORIGIN]), await connect(alice)]
    bob_socket = await connect(bob)
    old_token = bearer(alice)
    new_password = "a brand new passphrase 42"
    response = await call(
        page.post,
        "/profile/",
        {"form": "password", "old_password": PASSWORD, "new_password1": new_password, "new_password2": new_password},
    )
    assert response.status_code == 302
    assert [await closed_with(socket) for socket in sockets] == [CLOSE_SIGNED_OUT] * 2
    await bob_socket.pong()
    _, connected = await handshake([old_token, ORIGIN])
    assert connected is False
    # This browser stays signed in, under a new session key: its page reconnects.
    renewed = (b"cookie", f"sessionid={page.cookies['sessionid'].value}".encode())
    assert renewed != cookie
    await connect(alice, headers=[renewed, ORIGIN])


@asynctest
async def test_an_admin_password_reset_closes_every_socket_of_the_account(alice, make_user) -> None:
    admin = await call(make_user, "root", is_staff=True, is_superuser=True)
    sockets = [await connect(alice), await connect(alice)]

    def reset() -> int:
        client = Client()
        client.force_login(admin)
        new_password = "another fresh passphrase 7"
        body = {"password1": new_password, "password2": new_password, "usable_password": "true"}
        response = client.post(f"/admin/accounts/user/{alice.pk}/password/", body)
        assert response.status_code == 302, response.context["form"].errors if response.context else response
        return response.status_code

    await call(reset)
    assert [await closed_with(socket) for socket in sockets] == [CLOSE_SIGNED_OUT] * 2


@asynctest
async def test_a_reused_refresh_token_closes_the_sockets_of_its_sign_in(alice) -> None:
    stolen = await call(accounts.tokens_for, alice)
    other = await call(accounts.tokens_for, alice)

    def refresh(token: str) -> Any:
        return APIClient().post("/api/v1/auth/token/refresh/", {"refresh": token}, format="json")

    rotated = (await call(refresh, stolen["refresh"])).json()
    socket = await connect(alice, headers=[token_header(rotated["access"]), ORIGIN])
    other_socket = await connect(alice, headers=[token_header(other["access"]), ORIGIN])
    assert (await call(refresh, stolen["refresh"])).status_code == 401
    assert await closed_with(socket) == CLOSE_SIGNED_OUT
    await other_socket.pong()
