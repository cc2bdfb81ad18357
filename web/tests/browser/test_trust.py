"""Reporting a message, and 1:1 conversations that stay between their two people, in real browsers."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from web.tests.browser.harness import unique
from web.tests.browser.helpers import (
    act_on,
    api_channel,
    api_post,
    heading,
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


def test_reporting_a_message_needs_a_reason_and_reaches_the_moderators(make_person, open_page, chat_server):
    alice, bob = make_person("alice"), make_person("bob")
    room = api_channel(chat_server, alice, unique("reports"), members=(bob,))
    api_post(chat_server, alice, room, "something objectionable")
    page = open_page(bob, f"/rooms/{room}/")
    reports = []
    page.on("request", lambda request: reports.append(request) if request.url.endswith("/report/") else None)

    act_on(page, "something objectionable", "Report")
    dialog = page.get_by_role("dialog", name="Report message?")
    reason = dialog.get_by_role("textbox", name="Reason")
    expect(reason).to_be_visible()
    # Without a reason (or with spaces only) the dialog stays open and nothing is sent.
    dialog.get_by_role("button", name="Report").click()
    reason.fill("   ")
    dialog.get_by_role("button", name="Report").click()
    expect(dialog).to_be_visible()

    reason.fill("insulting")
    with page.expect_response(lambda response: response.url.endswith("/report/")) as reply:
        dialog.get_by_role("button", name="Report").click()

    assert reply.value.status == 201
    assert [json.loads(request.post_data) for request in reports] == [{"reason": "insulting"}]
    expect(dialog).to_be_hidden()
    expect(page.locator("#toast")).to_have_text("Reported. The moderators will look at it.")


def test_ones_own_messages_offer_no_report(make_person, open_page, chat_server):
    alice = make_person("alice")
    room = api_channel(chat_server, alice, unique("mine"))
    page = open_page(alice, f"/rooms/{room}/")

    send(page, "my own words")
    item = message(page, "my own words")
    item.hover()

    expect(item.get_by_role("button", name="Delete")).to_be_visible()
    expect(item.get_by_role("button", name="Report")).to_have_count(0)


def test_adding_someone_to_a_1to1_opens_a_new_group_conversation_without_the_history(make_person, open_page):
    alice, bob, carol = make_person("alice"), make_person("bob"), make_person("carol")
    alice_page, carol_page = open_page(alice), open_page(carol)
    start_direct(alice_page, bob)
    send(alice_page, "just between us")

    panel = open_members(alice_page)
    panel.get_by_label("Add someone").fill(carol.username)
    panel.get_by_role("button", name="Add Carol").click()

    expect(heading(alice_page)).to_have_text("Bob, Carol")
    expect(alice_page.get_by_text("Group conversation · 3 people")).to_be_visible()
    expect(message(alice_page, "just between us")).to_have_count(0)
    # The 1:1 is still there, unchanged, and Carol never sees it.
    sidebar(alice_page).get_by_role("link", name="Bob", exact=True).click()
    expect(message(alice_page, "just between us")).to_be_visible()
    room_link(carol_page, "Alice, Bob").click()
    expect(carol_page.get_by_text("Group conversation · 3 people")).to_be_visible()
    expect(message(carol_page, "just between us")).to_have_count(0)


def test_any_member_may_leave_a_group_conversation(make_person, open_page):
    alice, bob, carol = make_person("alice"), make_person("bob"), make_person("carol")
    alice_page, carol_page = open_page(alice), open_page(carol)
    start_direct(alice_page, bob, carol)
    send(alice_page, "hello both")
    room_link(carol_page, "Alice, Bob").click()
    expect(message(carol_page, "hello both")).to_be_visible()

    # A read marker or member list fetched as Carol leaves may find the room already gone (404).
    carol_page.watch.allow_console_error("status of 404")
    carol_page.get_by_role("button", name="Leave").click()
    carol_page.get_by_role("dialog", name="Leave Alice, Bob?").get_by_role("button", name="Leave").click()

    expect(room_link(carol_page, "Alice, Bob")).to_have_count(0)
    expect(message(alice_page, "hello both")).to_be_visible()
