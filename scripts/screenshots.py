#!/usr/bin/env python3
"""Regenerate docs/screenshots/*.png: the main screens of the web UI, light and dark.

Starts a throw-away server on a temporary SQLite database (the same harness
as the browser tests), seeds a small demo over the REST API, and photographs
it with Debian's Chromium through Playwright. Run it with `make screenshots`.
Emoji need a colour emoji font (Debian: fonts-noto-color-emoji).
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

from web.tests.browser.harness import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    PASSWORD,
    Server,
    call_api,
    start_server,
)

OUT = REPO_ROOT / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def register(server: Server, username: str, display_name: str) -> dict[str, Any]:
    reply = call_api(
        server,
        "POST",
        "auth/register/",
        {"username": username, "email": f"{username}@example.com", "password": PASSWORD, "display_name": display_name},
    )
    return {"id": reply["user"]["id"], "username": username, "token": reply["access"]}


def seed(server: Server) -> dict[str, Any]:
    """Three people, two channels, a DM, and a conversation worth looking at."""
    alice = register(server, "alice", "Alice Martin")
    bob = register(server, "bob", "Bob Chen")
    carol = register(server, "carol", "Carol Diaz")

    def api(person: dict[str, Any], method: str, path: str, body: object = None) -> Any:
        return call_api(server, method, path, body, token=person["token"])

    # Alice, the first account, opened #general; bob and carol joined it as they registered.
    general = next(room["id"] for room in api(alice, "GET", "rooms/") if room["slug"] == "general")
    api(alice, "PATCH", f"rooms/{general}/", {"topic": "Company-wide news and chatter"})
    design = api(alice, "POST", "rooms/", {"name": "design", "topic": "Pixels and prototypes"})["id"]
    api(alice, "POST", "rooms/", {"name": "leads", "visibility": "private"})
    api(carol, "POST", f"rooms/{design}/join/")

    def post(person: dict[str, Any], room: int, body: str) -> int:
        return int(api(person, "POST", f"rooms/{room}/messages/", {"body": body})["id"])

    release = post(alice, general, "Good morning everyone! The **release** is planned for Thursday.")
    post(bob, general, "Great news. I pushed the fix for the login bug, see `accounts/views.py`.")
    hello = post(carol, general, "Nice work @bob! Does it also cover _password resets_?")
    api(alice, "POST", f"messages/{hello}/reactions/", {"emoji": "🎉"})
    api(bob, "POST", f"messages/{hello}/reactions/", {"emoji": "🎉"})
    answer = post(bob, general, "It does. The checklist is here: https://example.com/release-checklist")
    api(bob, "PATCH", f"messages/{answer}/", {"body": "It does. The checklist: https://example.com/release-checklist"})
    post(carol, general, "```\nmake test\nmake screenshots\n```\nAll green on my machine.")
    post(bob, general, "@alice can you review the notes before lunch?")
    api(carol, "POST", f"messages/{hello}/reactions/", {"emoji": "👍"})

    for person, body in (
        (bob, "Which build goes out, 4.2 or 4.2.1?"),
        (carol, "4.2.1: it has the **release** notes fix."),
        (alice, "4.2.1 it is. Thanks both!"),
    ):
        api(person, "POST", f"rooms/{general}/messages/", {"body": body, "parent": release})

    post(carol, design, "New icons are in the shared folder.")
    dm = api(bob, "POST", "dms/", {"users": [alice["id"]]})["id"]
    post(bob, dm, "Coffee at 3?")
    return {"general": general, "design": design, "dm": dm, "alice": alice, "bob": bob}


def sign_in(page: Page, username: str, path: str) -> None:
    page.goto(f"/login/?next={path}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")


def settle(page: Page) -> None:
    """Let fonts, presence dots and the read marker settle before the picture."""
    page.wait_for_timeout(700)
    page.mouse.move(0, 0)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as workdir:
        server = start_server(Path(workdir))
        try:
            demo = seed(server)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                shoot(browser, server, demo)
                browser.close()
        finally:
            server.stop()
    for path in sorted(OUT.glob("*.png")):
        print(f"wrote {path.relative_to(REPO_ROOT)} ({path.stat().st_size // 1024} KiB)")


def shoot(browser: Any, server: Server, demo: dict[str, Any]) -> None:
    general = f"/rooms/{demo['general']}/"
    for scheme, suffix in (("light", ""), ("dark", "-dark")):
        context = browser.new_context(
            base_url=server.url, viewport=DESKTOP, color_scheme=scheme, locale="en-US", timezone_id="Europe/Paris"
        )
        page = context.new_page()
        page.goto("/login/")
        page.screenshot(path=OUT / f"login{suffix}.png")

        # Bob is online in the other context, so Alice sees his dot.
        bob_context = browser.new_context(base_url=server.url, viewport=DESKTOP)
        bob = bob_context.new_page()
        sign_in(bob, "bob", general)

        sign_in(page, "alice", general)
        settle(page)
        bob.get_by_role("textbox", name="Message #general").press_sequentially("Sure, on it", delay=30)
        page.wait_for_timeout(300)
        page.screenshot(path=OUT / f"chat{suffix}.png")

        page.get_by_role("button", name="Members (3)").click()
        settle(page)
        page.screenshot(path=OUT / f"members{suffix}.png")
        page.get_by_role("button", name="Close members").click()

        page.get_by_role("button", name=re.compile("^3 replies")).click()
        expect(page.get_by_role("log", name="Replies")).to_contain_text("4.2.1 it is")
        settle(page)
        page.screenshot(path=OUT / f"thread{suffix}.png")
        page.get_by_role("button", name="Close thread").click()

        search = page.get_by_role("searchbox", name="Search messages")
        search.fill("release")
        search.press("Enter")
        expect(page.get_by_role("complementary", name="Search results").locator("mark").first).to_be_visible()
        settle(page)
        page.screenshot(path=OUT / f"search{suffix}.png")
        page.get_by_role("button", name="Close search results").click()

        page.get_by_role("navigation", name="Rooms").get_by_role("button", name="Create a channel").click()
        dialog = page.get_by_role("dialog", name="Create a channel")
        dialog.get_by_label("Name").fill("release-planning")
        dialog.get_by_label("Topic").fill("Everything about Thursday")
        page.wait_for_timeout(200)
        page.screenshot(path=OUT / f"create-channel{suffix}.png")
        context.close()
        bob_context.close()

        phone = browser.new_context(
            base_url=server.url,
            viewport=PHONE,
            color_scheme=scheme,
            device_scale_factor=2,
            has_touch=True,
            is_mobile=True,
            locale="en-US",
        )
        page = phone.new_page()
        sign_in(page, "bob", general)
        settle(page)
        page.screenshot(path=OUT / f"phone{suffix}.png")
        phone.close()


if __name__ == "__main__":
    main()
