"""The account in the browser: what an open tab shows when its account is deactivated."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from playwright.sync_api import expect

from web.tests.browser.harness import PASSWORD, REPO_ROOT, Server, unique
from web.tests.browser.helpers import api_channel, composer

pytestmark = pytest.mark.browser


def make_staff(server: Server) -> str:
    """Create a superuser in the server's database; return their username."""
    username = unique("root")
    subprocess.run(  # noqa: S603 — our own interpreter and manage.py
        [
            sys.executable,
            "manage.py",
            "createsuperuser",
            "--noinput",
            "--username",
            username,
            "--email",
            f"{username}@example.com",
        ],
        cwd=REPO_ROOT,
        env={**server.env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD},
        check=True,
        timeout=60,
        capture_output=True,
    )
    return username


def deactivate_in_the_admin(page: Any, staff: str, username: str) -> None:
    """Sign in to the admin as `staff` and deactivate `username` with the user list's action."""
    page.goto("/admin/login/?next=/admin/accounts/user/")
    page.get_by_label("Username").fill(staff)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto(f"/admin/accounts/user/?q={username}")
    page.get_by_role("checkbox", name=f"Select this object for an action - {username}").check()
    page.locator("select[name=action]").select_option("deactivate_accounts")
    page.get_by_label("Reason").fill("Browser test")
    page.get_by_role("button", name="Run").click()
    expect(page.get_by_text("Deactivated 1 account(s)")).to_be_visible()


def test_an_open_tab_says_its_account_was_deactivated_and_stops_reconnecting(make_person, open_page, chat_server):
    alice = make_person("alice")
    room = api_channel(chat_server, alice, unique("last"))
    page = open_page(alice, f"/rooms/{room}/")
    sockets: list[str] = []
    page.on("websocket", lambda socket: sockets.append(socket.url))

    admin = open_page(None, "")
    admin.watch.allow_console_error("status of 404")  # the admin pages ask for a favicon there is none of
    deactivate_in_the_admin(admin, make_staff(chat_server), alice.username)

    expect(page.get_by_role("alert").filter(has_text="Your account was deactivated")).to_be_visible()
    expect(page.locator("#connection")).to_have_attribute("data-state", "stopped")
    expect(composer(page)).to_be_disabled()
    # No reconnect loop: the first retry would come within a second.
    page.wait_for_timeout(1500)
    assert sockets == []
    expect(page).to_have_url(f"{chat_server.url}/rooms/{room}/")
