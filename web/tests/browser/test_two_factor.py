"""Two-factor sign-in in the browser: set up an authenticator, sign out, sign in again with a code."""

from __future__ import annotations

import re
import time
from typing import Any

import pyotp
import pytest
from playwright.sync_api import expect

from web.tests.browser.harness import PASSWORD

pytestmark = pytest.mark.browser


def code_field(page: Any) -> Any:
    return page.get_by_role("textbox", name="Code", exact=True)


def test_enrol_an_authenticator_sign_out_and_sign_in_with_a_code(make_person, open_page):
    alice = make_person("alice")
    page = open_page(alice, "/")
    page.watch.allow_console_error("status of 401")  # the code page answers a wrong code with 401

    page.goto("/profile/")
    page.get_by_role("link", name="Set up two-factor sign-in").click()
    page.get_by_role("button", name="Set up an authenticator app").click()
    expect(page.get_by_role("img", name="QR code of your authenticator key").locator("svg")).to_be_visible()
    secret = page.locator(".mfa-secret").inner_text().strip()
    authenticator = pyotp.TOTP(secret)
    code_field(page).fill(authenticator.now())
    page.get_by_role("button", name="Turn on two-factor sign-in").click()

    codes = page.get_by_role("list", name="Recovery codes").get_by_role("listitem")
    expect(codes).to_have_count(10)
    page.get_by_role("link", name="I have saved them").click()
    expect(page.locator(".mfa-state")).to_contain_text("Two-factor sign-in is on")

    page.goto("/profile/")
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login/$"))

    page.get_by_label("Username").fill(alice.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
    code_field(page).fill("000000")
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_text("That code is wrong, already used or expired.")).to_be_visible()

    # The next step's code: the one that confirmed the set-up may still be current, and is used up.
    code_field(page).fill(authenticator.at(time.time() + 30))
    page.get_by_role("button", name="Verify").click()

    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    page.goto("/profile/")
    expect(page.get_by_role("region", name="Where you're signed in")).to_contain_text("Signed in (web+totp)")
