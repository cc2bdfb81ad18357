"""Catching up in the browser: "Jump to newest" with the count of what arrived below, "Mark all as read"
(Shift+Esc) reaching the person's other devices, "Mark read" for one room and the Unreads view."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from web.tests.browser.harness import call_api, unique
from web.tests.browser.helpers import api_channel, api_post, api_rooms, heading, message, room_link

pytestmark = pytest.mark.browser


def test_jump_to_newest_shows_while_scrolled_up_with_the_count_of_new_messages(make_person, open_page, chat_server):
    alice, bob = make_person("alice"), make_person("bob")
    name = unique("busy")
    room = api_channel(chat_server, alice, name, members=(bob,))
    for n in range(1, 61):
        last = api_post(chat_server, alice, room, f"Backlog {n:02d}")
    call_api(chat_server, "POST", f"rooms/{room}/read/", {"message_id": last["id"]}, token=bob.access)
    page = open_page(bob, f"/rooms/{room}/")
    expect(message(page, "Backlog 60")).to_be_in_viewport()
    jump = page.locator("#jump-newest")
    expect(jump).to_be_hidden()

    page.locator("#messages").evaluate("scroller => { scroller.scrollTop = 0; }")
    expect(page.get_by_role("button", name="Jump to newest")).to_be_visible()
    api_post(chat_server, alice, room, "Fresh one")
    api_post(chat_server, alice, room, "Fresh two")
    button = page.get_by_role("button", name="Jump to newest, 2 new messages below")
    expect(button).to_have_text("2 new messages · Jump to newest")
    expect(message(page, "Fresh two")).not_to_be_in_viewport()

    # Reaching the bottom is reading: the marker moves on the server too.
    with page.expect_response(lambda response: response.url.endswith(f"/rooms/{room}/read/")) as marked:
        button.click()

    expect(message(page, "Fresh two")).to_be_in_viewport()
    expect(jump).to_be_hidden()
    expect(page.locator("#messages")).to_be_focused()
    assert marked.value.status == 204
    assert api_rooms(chat_server, bob)[room]["unread_count"] == 0


def test_shift_escape_marks_everything_read_on_every_device(make_person, open_page, chat_server):
    alice, bob = make_person("alice"), make_person("bob")
    first, second = unique("first"), unique("second")
    rooms = [api_channel(chat_server, alice, name, members=(bob,)) for name in (first, second)]
    home = api_channel(chat_server, bob, unique("home"))
    page = open_page(bob, f"/rooms/{home}/")
    other_device = open_page(bob, f"/rooms/{home}/")
    for room in rooms:
        api_post(chat_server, alice, room, "Catch this")
    api_post(chat_server, alice, rooms[1], f"@{bob.username} and this")
    for tab in (page, other_device):
        expect(room_link(tab, first)).to_have_accessible_name(re.compile("1 unread"))
        expect(room_link(tab, second)).to_have_accessible_name(re.compile("2 unread"))
    page.get_by_role("button", name="Unreads: 2 rooms").click()
    unreads = page.get_by_role("dialog", name="Unreads")
    expect(unreads.get_by_role("button", name=f"Open #{second}, 2 unread, 1 mention")).to_be_visible()
    expect(unreads.get_by_role("button", name=f"Open #{first}, 1 unread")).to_be_visible()
    unreads.get_by_role("button", name="Close").click()

    page.locator("#composer-input").press("Shift+Escape")

    expect(page.get_by_role("status").filter(has_text="Marked 2 rooms as read.")).to_be_visible()
    for tab in (page, other_device):
        expect(room_link(tab, first)).not_to_have_accessible_name(re.compile("unread"))
        expect(room_link(tab, second)).not_to_have_accessible_name(re.compile("unread"))
        expect(tab.get_by_role("button", name="Unreads", exact=True)).to_be_visible()
    assert [api_rooms(chat_server, bob)[room]["unread_count"] for room in rooms] == [0, 0]
    page.get_by_role("button", name="Unreads", exact=True).click()
    expect(page.get_by_role("dialog", name="Unreads").get_by_text("You are all caught up.")).to_be_visible()


def test_one_room_is_marked_read_from_its_header_and_from_the_unreads_view(make_person, open_page, chat_server):
    alice, bob = make_person("alice"), make_person("bob")
    first, second = unique("one"), unique("two")
    rooms = [api_channel(chat_server, alice, name, members=(bob,)) for name in (first, second)]
    home = api_channel(chat_server, bob, unique("home"))
    page = open_page(bob, f"/rooms/{home}/")
    for room in rooms:
        api_post(chat_server, alice, room, "Something new")
    expect(room_link(page, second)).to_have_accessible_name(re.compile("1 unread"))

    page.get_by_role("button", name="Unreads: 2 rooms").click()
    page.get_by_role("dialog", name="Unreads").get_by_role("button", name=f"Mark #{first} read").click()

    expect(
        page.get_by_role("dialog", name="Unreads").get_by_role("button", name=re.compile(f"#{first}"))
    ).to_have_count(0)
    expect(room_link(page, first)).not_to_have_accessible_name(re.compile("unread"))
    expect(room_link(page, second)).to_have_accessible_name(re.compile("1 unread"))
    assert api_rooms(chat_server, bob)[rooms[0]]["unread_count"] == 0
    page.get_by_role("dialog", name="Unreads").get_by_role("button", name=f"Open #{second}, 1 unread").click()
    expect(heading(page)).to_have_text(f"#{second}")
