"""Mentions in the browser: what counts as one, and whom it can reach."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from web.tests.browser.harness import call_api, unique
from web.tests.browser.helpers import api_channel, api_post, message, room_link, send

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


def test_mentioning_someone_outside_the_channel_offers_the_owner_to_add_them(make_person, open_page, chat_server):
    alice, bob, carol, dave = make_person("alice"), make_person("bob"), make_person("carol"), make_person("dave")
    name = unique("crew")
    room = api_channel(chat_server, alice, name, members=(bob,))
    alice_page = open_page(alice, f"/rooms/{room}/")

    send(alice_page, f"Shall we ask @{carol.username}?")
    expect(message(alice_page, "Shall we ask")).to_be_visible()
    # Not a mention: nothing in the message names her id.
    [stored] = call_api(chat_server, "GET", f"rooms/{room}/messages/", token=bob.access)["results"]
    assert (stored["mentions"], f'data-user-id="{carol.id}"' in stored["html"]) == ([], False)
    expect(message(alice_page, "Shall we ask").locator(".mention")).to_have_count(0)
    note = alice_page.get_by_text(f"@{carol.username} is not in this channel — add them?")
    expect(note).to_be_visible()

    alice_page.get_by_role("button", name=f"Add @{carol.username}").click()
    expect(note).to_be_hidden()
    expect(alice_page.get_by_text(f"Carol (@{carol.username}) was added to #{name}.")).to_be_visible()
    members = call_api(chat_server, "GET", f"rooms/{room}/members/", token=alice.access)["results"]
    assert carol.id in [member["user"]["id"] for member in members]

    # A plain member is told, and not offered what they may not do.
    bob_page = open_page(bob, f"/rooms/{room}/")
    send(bob_page, f"And @{dave.username}?")
    expect(bob_page.get_by_text(f"@{dave.username} is not in this channel, so they were not notified.")).to_be_visible()
    expect(bob_page.get_by_role("button", name=re.compile("^Add @"))).to_have_count(0)
    # A name that is nobody's is not worth a note (both names are looked up before either shows).
    erin = make_person("erin")
    send(bob_page, f"Ping @nobody-by-that-name and @{erin.username}")
    expect(bob_page.get_by_text(f"@{erin.username} is not in this channel")).to_be_visible()
    expect(bob_page.locator(".outsider")).to_have_count(2)
