"""Mentions in the browser: what counts as one, and whom it can reach."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from chatproject.tests.browser.harness import unique
from chatproject.tests.browser.helpers import api_channel, api_post, message, room_link

pytestmark = pytest.mark.browser


def test_only_a_real_mention_counts_and_is_highlighted(make_person, open_page, chat_server):
    alice, bob = make_person("alice"), make_person("bob")
    name = unique("ping")
    room = api_channel(chat_server, alice, name, members=(bob,))
    page = open_page(alice, f"/rooms/{api_channel(chat_server, alice, unique('elsewhere'))}/")

    # Text that looks like mention markup is text, not a mention.
    fake = f'Look: data-user-id="{alice.id}" <span class="mention" data-user-id="{alice.id}">@x</span>'
    api_post(chat_server, bob, room, fake)
    link = room_link(page, name)
    expect(link).to_have_accessible_name(re.compile("1 unread"))
    expect(link).not_to_have_accessible_name(re.compile("mention"))
    api_post(chat_server, bob, room, f"Really, @{alice.username}")
    expect(link).to_have_accessible_name(re.compile("2 unread, 1 mention"))

    link.click()
    expect(message(page, "Look:")).not_to_have_class(re.compile("mentions-me"))
    expect(message(page, "Look:").locator(".mention")).to_have_count(0)
    expect(message(page, "Really,")).to_have_class(re.compile("mentions-me"))
    expect(message(page, "Really,").locator(".mention-me")).to_have_text(f"@{alice.username}")
