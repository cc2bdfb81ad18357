"""Passkeys in Chromium, on its virtual authenticator (DevTools protocol, WebAuthn domain).

WebAuthn needs a domain as the relying party, not an IP address, so these
pages are opened at http://localhost (a secure context like 127.0.0.1).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from web.tests.browser.harness import EXPECT_TIMEOUT_MS, PASSWORD, Person, Server

pytestmark = pytest.mark.browser


@pytest.fixture
def passkey_page(browser: Any, chat_server: Server) -> Iterator[Any]:
    """A page at http://localhost with a virtual platform authenticator that verifies its user."""
    context = browser.new_context(base_url=f"http://localhost:{chat_server.port}", locale="en-US")
    context.set_default_timeout(EXPECT_TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    devtools = context.new_cdp_session(page)
    devtools.send("WebAuthn.enable")
    authenticator = devtools.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    page.devtools = devtools
    page.authenticator_id = authenticator["authenticatorId"]
    try:
        yield page
        assert errors == [], "the page logged errors"
    finally:
        context.close()


def password_sign_in(page: Any, person: Person) -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill(person.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def log_out(page: Any) -> None:
    page.goto("/profile/")
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login/$"))


def test_add_a_passkey_then_sign_in_with_it_alone_and_as_the_second_factor(make_person, passkey_page):
    page = passkey_page
    alice = make_person("alice")
    password_sign_in(page, alice)
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")

    page.goto("/profile/two-factor/")
    page.get_by_label("Name for a new passkey").fill("Virtual key")
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.get_by_role("list", name="Recovery codes").get_by_role("listitem")).to_have_count(10)
    page.get_by_role("button", name="I have saved them").click()
    expect(page.get_by_role("button", name="Rename passkey Virtual key")).to_be_visible()
    expect(page.locator(".mfa-state")).to_contain_text("Two-factor sign-in is on")
    credentials = page.devtools.send("WebAuthn.getCredentials", {"authenticatorId": page.authenticator_id})
    assert len(credentials["credentials"]) == 1

    # Password-less: no username, no password.
    log_out(page)
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")

    # The password first, then the passkey instead of a code.
    log_out(page)
    password_sign_in(page, alice)
    expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
    page.get_by_role("button", name="Use a passkey").click()
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")

    page.goto("/profile/")
    expect(page.get_by_role("region", name="Where you're signed in")).to_contain_text("Signed in (web+webauthn)")
