"""Threads and search in real browsers: a thread conversation live in the thread panel, and a
search result that opens the conversation at the message."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from web.tests.browser.harness import call_api, unique
from web.tests.browser.helpers import act_on, api_channel, api_post, message

pytestmark = pytest.mark.browser


def thread_panel(page: Page):  # type: ignore[no-untyped-def]
    return page.get_by_role("complementary", name="Thread")


def reply(page: Page, text: str, *, broadcast: bool = False) -> None:
    panel = thread_panel(page)
    if broadcast:
        panel.get_by_role("checkbox", name=re.compile("^Also send to")).check()
    box = panel.get_by_role("textbox", name="Reply in thread")
    box.fill(text)
    box.press("Enter")


def test_two_people_hold_a_thread_conversation_with_replies_arriving_live(make_person, open_page, chat_server):
    alice, bob = make_person("alice"), make_person("bob")
    name = unique("planning")
    room = api_channel(chat_server, alice, name, members=(bob,))
    api_post(chat_server, alice, room, "Where shall we have lunch?")
    alice_page, bob_page = open_page(alice, f"/rooms/{room}/"), open_page(bob, f"/rooms/{room}/")

    act_on(alice_page, "Where shall we have lunch?", "Reply in thread")
    act_on(bob_page, "Where shall we have lunch?", "Reply in thread")
    for page in (alice_page, bob_page):
        expect(thread_panel(page).locator("#thread-root")).to_contain_text("Where shall we have lunch?")

    reply(alice_page, "The noodle place?")
    expect(thread_panel(bob_page).get_by_role("log", name="Replies")).to_contain_text("The noodle place?")
    reply(bob_page, "Yes, at **noon**")
    expect(thread_panel(alice_page).get_by_role("log", name="Replies").locator("strong")).to_have_text("noon")

    for page in (alice_page, bob_page):
        # The replies stay in the thread; the root says how many there are and who wrote them.
        expect(message(page, "The noodle place?")).to_have_count(0)
        expect(
            message(page, "Where shall we have lunch?").get_by_role("button", name=re.compile("^2 replies"))
        ).to_be_visible()

    reply(bob_page, "Telling everyone", broadcast=True)
    expect(message(alice_page, "Telling everyone")).to_be_visible()
    expect(message(alice_page, "Telling everyone")).to_contain_text("replied in a thread")
    expect(thread_panel(alice_page).get_by_role("log", name="Replies")).to_contain_text("Telling everyone")

    # The thread is in Alice's followed threads (she started it), read up to Bob's last reply.
    thread_panel(alice_page).get_by_role("button", name="Close thread").click()
    alice_page.get_by_role("button", name=re.compile("^Threads")).click()
    threads = alice_page.get_by_role("complementary", name="Threads you follow")
    expect(threads.get_by_role("button", name=re.compile("Where shall we have lunch"))).to_contain_text("3 replies")
    assert not alice_page.watch.errors, alice_page.watch.errors
    assert not bob_page.watch.errors, bob_page.watch.errors


def test_search_finds_a_message_and_opens_it_in_context(make_person, open_page, chat_server):
    alice = make_person("alice")
    name = unique("archive")
    room = api_channel(chat_server, alice, name)
    api_post(chat_server, alice, room, "The launch code word is pelican")
    # Enough after it that the first page of history does not reach it.
    for n in range(1, 121):
        api_post(chat_server, alice, room, f"Later chatter {n:03d}")
    page = open_page(alice, f"/rooms/{room}/")
    expect(message(page, "Later chatter 120")).to_be_visible()
    expect(message(page, "pelican")).to_have_count(0)

    box = page.get_by_role("searchbox", name="Search messages")
    # Ctrl+K from the message box; / from anywhere that is not a text field.
    page.keyboard.press("Control+k")
    expect(box).to_be_focused()
    page.get_by_role("region", name="Message history").focus()
    page.keyboard.press("/")
    expect(box).to_be_focused()
    box.fill(f"pelican in:#{name}")
    box.press("Enter")

    results = page.get_by_role("complementary", name="Search results")
    group = results.get_by_role("region", name=f"#{name}")
    expect(group.locator("mark")).to_have_text("pelican")
    group.get_by_role("button", name=re.compile("launch code word")).click()

    found = message(page, "The launch code word is pelican")
    expect(found).to_be_in_viewport()
    expect(found).to_have_class(re.compile(r"\bhighlighted\b"))
    assert not page.watch.errors, page.watch.errors


def test_lists_quotes_and_channel_links_render_and_a_channel_link_opens_the_channel(
    make_person, open_page, chat_server
):
    alice = make_person("alice")
    here = api_channel(chat_server, alice, unique("here"))
    there = call_api(chat_server, "POST", "rooms/", {"name": unique("there")}, token=alice.access)
    api_post(
        chat_server,
        alice,
        here,
        f"Plan:\n\n- one\n- ~~two~~\n\n> quoted\n\nsee #{there['slug']} or https://example.com.",
    )
    page = open_page(alice, f"/rooms/{here}/")

    plan = message(page, "Plan:")
    expect(plan.locator("li")).to_have_count(2)
    expect(plan.locator("li s")).to_have_text("two")
    expect(plan.locator("blockquote")).to_have_text("quoted")
    expect(plan.get_by_role("link", name="https://example.com")).to_have_attribute("href", "https://example.com")
    plan.get_by_role("link", name=f"#{there['slug']}").click()

    expect(page.get_by_role("heading", level=1)).to_have_text(f"#{there['name']}")
    assert not page.watch.errors, page.watch.errors


def test_a_copied_link_opens_the_message_in_context_for_another_member(make_person, open_page, chat_server):
    alice, bob = make_person("alice"), make_person("bob")
    room = api_channel(chat_server, alice, unique("links"), members=(bob,))
    api_post(chat_server, alice, room, "The decision we keep coming back to")
    for n in range(1, 101):
        api_post(chat_server, alice, room, f"Filler {n:03d}")
    alice_page = open_page(alice, f"/rooms/{room}/", permissions=["clipboard-read", "clipboard-write"])
    alice_page.get_by_role("searchbox", name="Search messages").fill("decision")
    alice_page.get_by_role("searchbox", name="Search messages").press("Enter")
    alice_page.get_by_role("complementary", name="Search results").get_by_role(
        "button", name=re.compile("decision")
    ).click()
    act_on(alice_page, "The decision we keep", "Copy link")
    link = alice_page.evaluate("navigator.clipboard.readText()")
    assert re.fullmatch(rf"{re.escape(chat_server.url)}/rooms/{room}/\?message=\d+", link), link

    bob_page = open_page(bob, link.removeprefix(chat_server.url))

    found = message(bob_page, "The decision we keep coming back to")
    expect(found).to_be_in_viewport()
    expect(found).to_have_class(re.compile(r"\bhighlighted\b"))
    assert not bob_page.watch.errors, bob_page.watch.errors


def test_a_long_thread_opens_with_its_newest_replies(make_person, open_page, chat_server):
    alice = make_person("alice")
    room = api_channel(chat_server, alice, unique("long"))
    root = api_post(chat_server, alice, room, "A long discussion")
    for n in range(1, 206):
        call_api(
            chat_server,
            "POST",
            f"rooms/{room}/messages/",
            {"body": f"Point {n:03d}", "parent": root["id"]},
            token=alice.access,
        )
    page = open_page(alice, f"/rooms/{room}/")

    message(page, "A long discussion").get_by_role("button", name=re.compile("^205 replies")).click()

    replies = thread_panel(page).get_by_role("log", name="Replies")
    expect(replies.locator("article")).to_have_count(205)
    expect(replies.locator("article").last).to_contain_text("Point 205")
