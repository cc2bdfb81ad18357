"""Rooms in the browser: private channels, group conversations, members, settings,
kicking, banning and leaving."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from web.tests.browser.harness import unique
from web.tests.browser.helpers import (
    api_channel,
    create_channel,
    heading,
    join_channel,
    message,
    room_link,
    send,
    sidebar,
    start_direct,
)

pytestmark = pytest.mark.browser


def open_members(page):
    page.get_by_role("button", name=re.compile(r"^Members")).click()
    return page.get_by_role("complementary", name="Members")


def test_a_private_channel_shows_only_to_the_people_added(make_person, open_page):
    alice, bob, carol = make_person("alice"), make_person("bob"), make_person("carol")
    alice_page, bob_page, carol_page = open_page(alice), open_page(bob), open_page(carol)
    name = unique("hush")

    create_channel(alice_page, name, private=True)
    panel = open_members(alice_page)
    panel.get_by_label("Add someone").fill(bob.username)
    panel.get_by_role("button", name="Add Bob").click()
    expect(panel.get_by_role("listitem").filter(has_text="Bob")).to_be_visible()
    send(alice_page, "Only for Bob")

    expect(room_link(bob_page, name)).to_have_accessible_name(re.compile(r"\(private\)"))
    room_link(bob_page, name).click()
    expect(message(bob_page, "Only for Bob")).to_be_visible()
    # Carol can neither see it in her list nor find it among public channels.
    expect(room_link(carol_page, name)).to_have_count(0)
    sidebar(carol_page).get_by_role("button", name="Browse channels").click()
    dialog = carol_page.get_by_role("dialog", name="Browse channels")
    dialog.get_by_label("Search channels").fill(name)
    expect(dialog.get_by_text(re.compile("No public channel matches"))).to_be_visible()


def test_a_group_conversation_from_the_user_search(make_person, open_page):
    alice, bob, carol = make_person("alice"), make_person("bob"), make_person("carol")
    alice_page, bob_page, carol_page = open_page(alice), open_page(bob), open_page(carol)

    start_direct(alice_page, bob, carol)
    expect(heading(alice_page)).to_have_text("Bob, Carol")
    expect(alice_page.get_by_text("Group conversation · 3 people")).to_be_visible()
    send(alice_page, "Hello you two")

    for page, others in ((bob_page, "Alice, Carol"), (carol_page, "Alice, Bob")):
        room_link(page, others).click()
        expect(message(page, "Hello you two")).to_be_visible()
    send(carol_page, "Hi both")
    expect(message(bob_page, "Hi both")).to_be_visible()
    expect(message(alice_page, "Hi both")).to_be_visible()


def test_owners_rename_set_the_topic_kick_and_ban(make_person, open_page, chat_server):
    alice, bob = make_person("alice"), make_person("bob")
    name = unique("club")
    room = api_channel(chat_server, alice, name, members=(bob,))
    alice_page, bob_page = open_page(alice, f"/rooms/{room}/"), open_page(bob, f"/rooms/{room}/")

    alice_page.get_by_role("button", name="Settings").click()
    settings = alice_page.get_by_role("dialog", name=re.compile("^Settings of"))
    settings.get_by_label("Name").fill(f"{name}x")
    settings.get_by_label("Topic").fill("Members only, be nice")
    settings.get_by_role("button", name="Save").click()
    expect(heading(bob_page)).to_have_text(f"#{name}x")
    expect(bob_page.get_by_text("Members only, be nice")).to_be_visible()
    expect(bob_page.get_by_role("button", name="Settings")).to_be_hidden()

    panel = open_members(alice_page)
    panel.get_by_role("button", name="Kick Bob").click()
    alice_page.get_by_role("dialog", name="Kick Bob?").get_by_role("button", name="Kick").click()
    expect(room_link(bob_page, f"{name}x")).to_have_count(0)
    expect(bob_page.get_by_text(f"You were removed from #{name}x by an owner or admin.")).to_be_visible()

    # A kick is not a ban: Bob comes back.
    join_channel(bob_page, f"{name}x")
    expect(panel.get_by_role("button", name="Ban Bob")).to_be_visible()
    panel.get_by_role("button", name="Ban Bob").click()
    ban = alice_page.get_by_role("dialog", name="Ban Bob?")
    ban.get_by_label("Reason").fill("Spam")
    ban.get_by_role("button", name="Ban").click()
    expect(room_link(bob_page, f"{name}x")).to_have_count(0)
    expect(bob_page.get_by_text(f"You were banned from #{name}x")).to_be_visible()


def test_leaving_a_channel_takes_it_off_the_list(make_person, open_page, chat_server):
    alice, bob = make_person("alice"), make_person("bob")
    name = unique("passing")
    room = api_channel(chat_server, alice, name, members=(bob,))
    bob_page = open_page(bob, f"/rooms/{room}/")

    bob_page.get_by_role("button", name="Leave").click()
    bob_page.get_by_role("dialog", name=f"Leave #{name}?").get_by_role("button", name="Leave").click()

    expect(room_link(bob_page, name)).to_have_count(0)
    # Everyone is in #general (a default channel): the page moves there.
    expect(heading(bob_page)).to_have_text("#general")


def test_a_ban_says_so_keeps_join_out_of_browse_and_is_lifted_from_the_members_panel(
    make_person, open_page, chat_server
):
    alice, bob = make_person("alice"), make_person("bob")
    name = unique("strict")
    room = api_channel(chat_server, alice, name, members=(bob,))
    alice_page, bob_page = open_page(alice, f"/rooms/{room}/"), open_page(bob, f"/rooms/{room}/")

    panel = open_members(alice_page)
    panel.get_by_role("button", name="Ban Bob").click()
    ban = alice_page.get_by_role("dialog", name="Ban Bob?")
    ban.get_by_label("Reason").fill("Spam links")
    ban.get_by_role("button", name="Ban").click()

    # Bob is told it was a ban, not just that he is out.
    expect(bob_page.get_by_text(f"You were banned from #{name}")).to_be_visible()
    expect(room_link(bob_page, name)).to_have_count(0)
    sidebar(bob_page).get_by_role("button", name="Browse channels").click()
    browse = bob_page.get_by_role("dialog", name="Browse channels")
    browse.get_by_label("Search channels").fill(name)
    listed = browse.get_by_role("listitem").filter(has_text=f"#{name}")
    expect(listed).to_contain_text("You are banned")
    expect(listed.get_by_role("button")).to_have_count(0)
    browse.get_by_role("button", name="Close").click()

    # The owner sees who is banned, by whom and why, and lifts it.
    banned = panel.get_by_role("list", name="Banned from this channel").get_by_role("listitem")
    expect(banned).to_have_count(1)
    expect(banned).to_contain_text(f"@{bob.username} · banned by @{alice.username}")
    expect(banned).to_contain_text("Reason: Spam links")
    banned.get_by_role("button", name=f"Lift the ban on Bob (@{bob.username})").click()
    expect(banned).to_have_count(0)
    expect(panel.get_by_text("Nobody is banned.")).to_be_visible()

    join_channel(bob_page, name)
    send(bob_page, "Back, and behaving")
    expect(message(alice_page, "Back, and behaving")).to_be_visible()


def test_plain_members_see_no_bans_in_the_members_panel(make_person, open_page, chat_server):
    alice, bob = make_person("alice"), make_person("bob")
    room = api_channel(chat_server, alice, unique("open"), members=(bob,))
    bob_page = open_page(bob, f"/rooms/{room}/")

    panel = open_members(bob_page)

    expect(panel.get_by_role("listitem").filter(has_text="Alice")).to_be_visible()
    expect(panel.get_by_role("heading", name="Banned")).to_be_hidden()
