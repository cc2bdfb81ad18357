"""A new workspace in the browser: a private channel starts with the people picked in its dialog."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from web.tests.browser.harness import unique
from web.tests.browser.helpers import heading, message, room_link, send, sidebar

pytestmark = pytest.mark.browser


def test_a_private_channel_starts_with_the_people_picked_when_creating_it(make_person, open_page):
    alice, bob, carol = make_person("alice"), make_person("bob"), make_person("carol")
    alice_page, bob_page, carol_page = open_page(alice), open_page(bob), open_page(carol)
    name = unique("plans")

    sidebar(alice_page).get_by_role("button", name="Create a channel").click()
    dialog = alice_page.get_by_role("dialog", name="Create a channel")
    dialog.get_by_label("Name").fill(name)
    # The picker is for private channels: it shows once Private is chosen.
    expect(dialog.get_by_label("Add people")).to_be_hidden()
    dialog.get_by_role("radio", name=re.compile("Private")).check()
    dialog.get_by_label("Add people").fill(bob.username)
    dialog.get_by_role("button", name="Add Bob").click()
    expect(dialog.get_by_role("list", name="People to add").get_by_text("Bob")).to_be_visible()
    dialog.get_by_role("button", name="Create channel").click()
    expect(heading(alice_page)).to_have_text(f"{name} (private)")
    expect(alice_page.get_by_role("button", name=re.compile(r"^Members.*2"))).to_be_visible()
    send(alice_page, "Welcome to the plans")

    room_link(bob_page, name).click()
    expect(message(bob_page, "Welcome to the plans")).to_be_visible()
    expect(room_link(carol_page, name)).to_have_count(0)
