"""Reading in the browser: where the "New messages" line goes, whatever the backlog."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from web.tests.browser.harness import call_api, unique
from web.tests.browser.helpers import api_channel, api_post, room_link

pytestmark = pytest.mark.browser


def test_the_new_messages_line_sits_at_the_read_marker_past_two_hundred_unread(make_person, open_page, chat_server):
    alice, bob = make_person("alice"), make_person("bob")
    name = unique("backlog")
    room = api_channel(chat_server, alice, name, members=(bob,))
    for n in range(1, 6):
        last_read = api_post(chat_server, alice, room, f"Already read {n}")
    call_api(chat_server, "POST", f"rooms/{room}/read/", {"message_id": last_read["id"]}, token=bob.access)
    # More than the 200 a first page holds.
    for n in range(1, 251):
        api_post(chat_server, alice, room, f"Unread {n:03d}")
    page = open_page(bob, f"/rooms/{api_channel(chat_server, bob, unique('elsewhere'))}/")
    expect(room_link(page, name)).to_have_accessible_name(re.compile("250 unread"))

    room_link(page, name).click()

    divider = page.get_by_role("separator").filter(has_text="New messages")
    expect(divider).to_be_in_viewport()
    expect(page.locator(".new-divider + article")).to_contain_text("Unread 001")
    expect(page.locator(".new-divider").locator("xpath=preceding-sibling::article[1]")).to_contain_text(
        "Already read 5"
    )
