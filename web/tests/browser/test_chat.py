"""Two people chatting in real browsers: live messages, DMs, reactions, edits, deletes,
reloads, going offline, and hostile message bodies."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from web.tests.browser.harness import unique
from web.tests.browser.helpers import (
    act_on,
    api_channel,
    api_post,
    api_rooms,
    composer,
    create_channel,
    heading,
    join_channel,
    message,
    messages,
    room_link,
    send,
    start_direct,
)

pytestmark = pytest.mark.browser


def test_two_people_chat_both_ways_live(make_person, open_page):
    alice, bob = make_person("alice"), make_person("bob")
    alice_page, bob_page = open_page(alice), open_page(bob)
    channel = unique("lobby")

    create_channel(alice_page, channel, topic="Say hi")
    join_channel(bob_page, channel)
    send(alice_page, "Hello from **Alice**")
    expect(message(bob_page, "Hello from Alice")).to_be_visible()
    send(bob_page, "Hi Alice, Bob here")
    expect(message(alice_page, "Bob here")).to_be_visible()

    for page in (alice_page, bob_page):
        expect(message(page, "Hello from Alice")).to_have_count(1)
        expect(message(page, "Bob here")).to_have_count(1)
        # Markdown as the server renders it.
        expect(message(page, "Hello from Alice").locator("strong")).to_have_text("Alice")
    expect(alice_page.get_by_text("Say hi")).to_be_visible()


def test_direct_message_with_reaction_edit_and_delete(make_person, open_page):
    alice, bob = make_person("alice"), make_person("bob")
    alice_page, bob_page = open_page(alice), open_page(bob)

    start_direct(alice_page, bob)
    expect(heading(alice_page)).to_have_text("Bob")
    send(alice_page, "Ping from Alice")
    # Bob's sidebar learns of the conversation live, with the message unread.
    expect(room_link(bob_page, "Alice")).to_have_accessible_name(re.compile("1 unread"))
    room_link(bob_page, "Alice").click()
    expect(message(bob_page, "Ping from Alice")).to_be_visible()

    act_on(bob_page, "Ping from Alice", "Add reaction")
    bob_page.get_by_role("button", name="React with thumbs up").click()
    expect(message(alice_page, "Ping from Alice").get_by_role("button", name="👍 1")).to_be_visible()
    expect(message(bob_page, "Ping from Alice").get_by_role("button", name="👍 1")).to_have_attribute(
        "aria-pressed", "true"
    )

    act_on(alice_page, "Ping from Alice", "Edit")
    editor = alice_page.get_by_role("textbox", name="Edit message")
    editor.fill("Ping from Alice, now edited")
    editor.press("Enter")
    for page in (alice_page, bob_page):
        expect(message(page, "now edited")).to_contain_text("(edited)")

    act_on(alice_page, "now edited", "Delete")
    alice_page.get_by_role("dialog", name="Delete message?").get_by_role("button", name="Delete").click()
    for page in (alice_page, bob_page):
        expect(message(page, "This message was deleted.")).to_have_count(1)
        expect(message(page, "now edited")).to_have_count(0)


def test_reload_keeps_history_and_the_read_position(make_person, open_page, chat_server):
    alice, bob = make_person("alice"), make_person("bob")
    busy = api_channel(chat_server, alice, unique("busy"), members=(bob,))
    quiet = api_channel(chat_server, alice, unique("quiet"))
    api_post(chat_server, alice, busy, "Earlier words")
    alice_page = open_page(alice, f"/rooms/{quiet}/")

    api_post(chat_server, bob, busy, "First thing you missed")
    api_post(chat_server, bob, busy, f"Second thing, @{alice.username}")
    busy_link = room_link(alice_page, "busy")
    expect(busy_link).to_have_accessible_name(re.compile("2 unread, 1 mention"))
    expect(alice_page).to_have_title(re.compile(r"^\(2 · @1\)"))

    # The counts are the server's: a reload shows the same, in the same room.
    alice_page.reload()
    expect(heading(alice_page)).to_have_text(re.compile("quiet"))
    expect(busy_link).to_have_accessible_name(re.compile("2 unread, 1 mention"))

    busy_link.click()
    divider = alice_page.get_by_role("separator").filter(has_text="New messages")
    expect(divider).to_be_visible()
    # The line sits right above the first message not yet read.
    expect(alice_page.locator(".new-divider + article")).to_contain_text("First thing you missed")
    expect(busy_link).not_to_have_accessible_name(re.compile("unread"))
    _wait_until_read(chat_server, alice, busy)

    alice_page.reload()
    expect(heading(alice_page)).to_have_text(re.compile("busy"))
    for text in ("Earlier words", "First thing you missed", "Second thing"):
        expect(message(alice_page, text)).to_have_count(1)
    expect(divider).to_have_count(0)
    expect(busy_link).not_to_have_accessible_name(re.compile("unread"))


def _wait_until_read(server, person, room_id, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api_rooms(server, person)[room_id]["unread_count"] == 0:
            return
        time.sleep(0.1)
    raise AssertionError("the read marker never reached the server")


def test_a_page_that_was_offline_gets_every_missed_message_once(make_person, open_page, chat_server):
    alice, bob = make_person("alice"), make_person("bob")
    room = api_channel(chat_server, alice, unique("flaky"), members=(bob,))
    alice_page, bob_page = open_page(alice, f"/rooms/{room}/"), open_page(bob, f"/rooms/{room}/")
    # Requests made while offline fail, as they should.
    alice_page.watch.allow_console_error("ERR_INTERNET_DISCONNECTED")
    send(bob_page, "Before the outage")
    expect(message(alice_page, "Before the outage")).to_be_visible()

    alice_page.context.set_offline(True)
    expect(alice_page.locator("#connection")).to_have_attribute("data-state", "offline")
    for n in range(1, 4):
        send(bob_page, f"Missed number {n}")
    send(alice_page, "Written while offline")
    expect(alice_page.get_by_text("Not sent: no connection to the server")).to_be_visible()
    expect(alice_page.get_by_role("button", name="Retry")).to_be_visible()
    expect(message(alice_page, "Missed number")).to_have_count(0)

    alice_page.context.set_offline(False)
    expect(alice_page.locator("#connection")).to_have_attribute("data-state", "live")
    for n in range(1, 4):
        expect(message(alice_page, f"Missed number {n}")).to_have_count(1)
    # The failed message went out by itself on reconnecting, once.
    expect(message(bob_page, "Written while offline")).to_have_count(1)
    expect(message(alice_page, "Written while offline")).to_have_count(1)
    expect(alice_page.locator("#pending-list article")).to_have_count(0)
    expect(message(alice_page, "Before the outage")).to_have_count(1)
    # Nothing arrives twice later either (a live copy after the replay, say).
    alice_page.wait_for_timeout(1500)
    expect(messages(alice_page)).to_have_count(5)


def test_the_page_reconnects_after_a_server_restart_and_misses_nothing(make_person, open_page, chat_server):
    alice, bob = make_person("alice"), make_person("bob")
    room = api_channel(chat_server, alice, unique("phoenix"), members=(bob,))
    page = open_page(alice, f"/rooms/{room}/")
    # While the server is down the browser logs each refused attempt, and a request
    # caught by the stop itself is reset.
    page.watch.allow_console_error("ERR_CONNECTION_REFUSED")
    page.watch.allow_console_error("ERR_CONNECTION_RESET")
    api_post(chat_server, bob, room, "Before the restart")
    expect(message(page, "Before the restart")).to_be_visible()

    chat_server.stop()
    expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
    expect(page.locator("#connection")).to_contain_text("Reconnecting")
    chat_server.start()
    # Posted before the page is back: it must come with the resume, not be lost.
    api_post(chat_server, bob, room, "During the comeback")

    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=20_000)
    api_post(chat_server, bob, room, "After the restart")
    for text in ("Before the restart", "During the comeback", "After the restart"):
        expect(message(page, text)).to_have_count(1)


HOSTILE_BODIES = [
    "<script>window.__pwned = 'script'; alert('script')</script>",
    "<img src=x onerror=\"window.__pwned = 'img'; alert('img')\">",
    "[click me](javascript:window.__pwned='link';alert('link'))",
    '<a href="javascript:alert(1)" onclick="alert(2)">raw link</a>',
    "<svg onload=alert('svg')></svg> **still bold**",
]


def test_hostile_bodies_show_as_text_and_run_nothing(make_person, open_page, chat_server):
    alice, mallory = make_person("alice"), make_person("mallory")
    room = api_channel(chat_server, alice, unique("open"), members=(mallory,))
    alice_page, mallory_page = open_page(alice, f"/rooms/{room}/"), open_page(mallory, f"/rooms/{room}/")
    dialogs: list[str] = []
    alice_page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    for body in HOSTILE_BODIES:
        send(mallory_page, body)
    expect(messages(alice_page)).to_have_count(len(HOSTILE_BODIES))

    expect(message(alice_page, "<script>window.__pwned")).to_be_visible()
    expect(message(alice_page, "<img src=x onerror=")).to_be_visible()
    expect(message(alice_page, "[click me](javascript:")).to_be_visible()
    body_elements = alice_page.locator("#message-list .message-body")
    expect(body_elements.locator("script, img, svg, iframe")).to_have_count(0)
    expect(body_elements.locator("[onclick], [onerror], [onload]")).to_have_count(0)
    expect(body_elements.locator('a[href^="javascript"]')).to_have_count(0)
    message(alice_page, "[click me]").click()
    message(alice_page, "raw link").click()
    alice_page.wait_for_timeout(300)

    assert alice_page.evaluate("window.__pwned") is None
    assert dialogs == []


def test_a_too_long_message_is_refused_before_sending(make_person, open_page, chat_server):
    alice = make_person("alice")
    room = api_channel(chat_server, alice, unique("long"))
    page = open_page(alice, f"/rooms/{room}/")
    posts: list[str] = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)

    composer(page).fill("x" * 4001)
    expect(page.get_by_text("1 characters over the limit of 4000")).to_be_visible()
    composer(page).press("Enter")

    expect(page.get_by_role("alert")).to_contain_text("too long to send: 4001 characters, the limit is 4000")
    assert [url for url in posts if "/messages/" in url] == []
    expect(composer(page)).to_have_value("x" * 4001)
    expect(page.locator("#pending-list article")).to_have_count(0)

    # Exactly at the limit is fine.
    composer(page).fill("y" * 4000)
    composer(page).press("Enter")
    expect(messages(page)).to_have_count(1)


def test_enter_sends_and_shift_enter_starts_a_new_line(make_person, open_page, chat_server):
    alice = make_person("alice")
    room = api_channel(chat_server, alice, unique("lines"))
    page = open_page(alice, f"/rooms/{room}/")

    box = composer(page)
    box.type("first line")
    box.press("Shift+Enter")
    box.type("second line")
    expect(messages(page)).to_have_count(0)
    box.press("Enter")

    expect(message(page, "first line").locator(".message-body")).to_contain_text("first line\nsecond line")
    expect(box).to_have_value("")


def test_a_new_display_name_shows_in_the_other_open_tabs_without_a_reload(make_person, open_page, chat_server):
    alice, bob = make_person("alice"), make_person("bob")
    # A channel and a DM in common: still one update per page.
    api_channel(chat_server, alice, unique("names"), members=(bob,))
    bob_page, alice_chat = open_page(bob), open_page(alice)
    start_direct(alice_chat, bob)
    send(alice_chat, "A word from Alice")
    room_link(bob_page, "Alice").click()
    expect(heading(bob_page)).to_have_text("Alice")
    expect(message(bob_page, "A word from Alice").locator(".author")).to_have_text("Alice")

    # Alice renames herself on the profile page, in another tab of her browser.
    profile = alice_chat.context.new_page()
    profile.goto("/profile/")
    profile.get_by_role("textbox", name=re.compile("^Display name")).fill("Alice Liddell")
    profile.get_by_role("button", name="Save name").click()
    expect(profile.get_by_text("Your display name is saved.")).to_be_visible()

    # Bob's page and alice's chat page follow live: the heading, the sidebar, the author of her message.
    expect(heading(bob_page)).to_have_text("Alice Liddell")
    expect(room_link(bob_page, "Alice Liddell")).to_be_visible()
    expect(message(bob_page, "A word from Alice").locator(".author")).to_have_text("Alice Liddell")
    expect(message(alice_chat, "A word from Alice").locator(".author")).to_have_text("Alice Liddell")
    for page in (bob_page, alice_chat):
        assert page.watch.unexpected_errors() == []
