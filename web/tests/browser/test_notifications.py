"""Notification settings on the chat screen: the bell menu of a room, and the settings dialog."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from web.tests.browser.harness import call_api, unique
from web.tests.browser.helpers import api_channel, api_post, room_link

pytestmark = pytest.mark.browser


def test_muting_a_room_from_its_bell_dims_it_and_drops_it_from_the_title(make_person, open_page, chat_server):
    alice, bob = make_person("alice"), make_person("bob")
    quiet, busy = unique("quiet"), unique("busy")
    quiet_id = api_channel(chat_server, alice, quiet, members=(bob,))
    busy_id = api_channel(chat_server, alice, busy, members=(bob,))
    page = open_page(alice, f"/rooms/{quiet_id}/")

    bell = page.get_by_role("button", name="Notifications for this room: mentions")
    bell.click()
    dialog = page.get_by_role("dialog", name="Notifications for this room")
    dialog.get_by_label("Nothing").check()
    dialog.get_by_label("Mute").select_option(label="For 1 hour")
    dialog.get_by_role("button", name="Save").click()

    expect(page.get_by_role("button", name="Notifications for this room: nothing")).to_be_visible()
    expect(room_link(page, quiet)).to_have_accessible_name(re.compile("muted"))
    assert call_api(chat_server, "GET", f"rooms/{quiet_id}/notifications/", token=alice.access)["level"] == "none"

    page.get_by_role("link", name=re.compile(busy)).click()
    api_post(chat_server, bob, quiet_id, "in the quiet room")
    api_post(chat_server, bob, busy_id, "elsewhere")
    expect(room_link(page, quiet)).to_have_accessible_name(re.compile("1 unread"))
    expect(page).to_have_title(re.compile(rf"^#{busy} · Chat$"))  # the muted room's unread is not counted


def test_the_settings_dialog_changes_email_and_do_not_disturb(make_person, open_page, chat_server):
    alice = make_person("alice")
    page = open_page(alice, "/")
    page.watch.allow_console_error("status of 400")  # the unknown time zone, refused on purpose
    page.get_by_role("button", name="Notification settings").click()
    dialog = page.get_by_role("dialog", name="Notification settings")
    dialog.get_by_label("Email me about missed direct messages and mentions").uncheck()
    dialog.get_by_label("Email after").select_option(label="15 minutes unread")
    dialog.get_by_label("Do not disturb", exact=True).select_option(label="For 1 hour")
    dialog.get_by_label("Time zone").fill("Mars/Base")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.get_by_text("Not a known time zone")).to_be_visible()

    dialog.get_by_label("Time zone").fill("Europe/Paris")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    prefs = call_api(chat_server, "GET", "users/me/preferences/", token=alice.access)
    assert prefs["email"] is False
    assert prefs["email_delay_seconds"] == 900
    assert prefs["timezone"] == "Europe/Paris"
    assert prefs["dnd_until"] is not None
