"""Names in the browser: a display name is anyone's to choose, so the username goes beside it
wherever a name could mislead."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from web.tests.browser.harness import call_api, unique
from web.tests.browser.helpers import api_channel, api_post, heading, message, room_link

pytestmark = pytest.mark.browser


def test_an_impostors_username_shows_beside_the_name_they_borrowed(make_person, open_page, chat_server):
    alice, bob, carol = make_person("alice"), make_person("bob"), make_person("carol")
    # Bob calls himself Alice.
    call_api(chat_server, "PATCH", "users/me/", {"display_name": "Alice"}, token=bob.access)
    room = api_channel(chat_server, alice, unique("masks"), members=(bob, carol))
    api_post(chat_server, alice, room, "The real one speaking")
    api_post(chat_server, bob, room, f"Trust me, I am @{alice.username}")
    page = open_page(carol, f"/rooms/{room}/")

    fake = message(page, "Trust me")
    expect(fake.locator(".message-meta")).to_contain_text(f"Alice@{bob.username}")
    expect(fake.locator(".author")).to_have_attribute("title", f"Alice (@{bob.username})")
    # The mention chip names whose account it points at.
    expect(fake.locator(".mention")).to_have_attribute("title", f"Alice (@{alice.username})")
    expect(message(page, "The real one").locator(".message-meta")).to_contain_text(f"Alice@{alice.username}")

    page.get_by_role("button", name=re.compile(r"^Members")).click()
    panel = page.get_by_role("complementary", name="Members")
    for person in (alice, bob):
        expect(panel.get_by_role("listitem").filter(has_text=f"@{person.username}")).to_contain_text("Alice")

    # A conversation with "Alice" says which account it is with.
    page.get_by_role("button", name="New direct message").click()
    dialog = page.get_by_role("dialog", name="New direct message")
    dialog.get_by_label("Find people").fill(bob.username)
    expect(dialog.get_by_role("listitem").filter(has_text=f"Alice (@{bob.username})")).to_be_visible()
    dialog.get_by_role("button", name="Add Alice").click()
    expect(dialog.get_by_role("list", name="Chosen people")).to_have_text(f"Alice (@{bob.username})×")
    dialog.get_by_role("button", name="Start conversation").click()
    expect(heading(page)).to_have_text("Alice")
    expect(page.locator("#room-topic")).to_have_text(f"Direct message · @{bob.username}")
    expect(room_link(page, "Alice")).to_have_attribute("title", f"@{bob.username}")
