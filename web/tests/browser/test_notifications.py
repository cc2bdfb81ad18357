"""Notifications on the chat screen: the bell menu of a room, the settings dialog, the service worker.

Headless Chromium has no push service to subscribe at, so the service
worker test hands it pushes through the DevTools protocol, as a push
service would.
"""

from __future__ import annotations

import re
from collections.abc import Callable

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
    page.get_by_role("button", name="Notification preferences").click()
    dialog = page.get_by_role("dialog", name="Notification preferences")
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


def test_the_service_worker_shows_a_pushed_message_and_closes_it_on_dismiss(make_person, open_page, chat_server):
    alice = make_person("alice")
    page = open_page(alice, "/", permissions=["notifications"])
    scope = page.evaluate(
        """async () => {
            const registration = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
            await navigator.serviceWorker.ready;
            return registration.scope;
        }"""
    )
    assert scope == f"{chat_server.url}/"
    cdp = page.context.new_cdp_session(page)
    cdp.send("ServiceWorker.enable")
    registrations: list[dict] = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda event: registrations.extend(event["registrations"]))
    for _ in range(50):
        if registrations:
            break
        page.wait_for_timeout(100)
    registration_id = registrations[0]["registrationId"]

    def deliver(payload: str) -> None:
        cdp.send(
            "ServiceWorker.deliverPushMessage",
            {"origin": f"{chat_server.url}/", "registrationId": registration_id, "data": payload},
        )

    shown = """async () => (await (await navigator.serviceWorker.ready).getNotifications())
        .map((n) => ({ title: n.title, body: n.body, tag: n.tag, url: n.data.url }))"""

    def notifications_once(settled: Callable[[list[dict]], bool]) -> list[dict]:
        # Polled from here: wait_for_function takes the promise an async predicate returns as truthy at once.
        listed: list[dict] = []
        for _ in range(100):
            listed = page.evaluate(shown)
            if settled(listed):
                break
            page.wait_for_timeout(100)
        return listed

    deliver(
        '{"type": "message", "room": 7, "message_id": 41, "title": "Bob in #news",'
        ' "body": "Lunch?", "url": "/rooms/7/#message-41"}'
    )
    assert notifications_once(lambda listed: len(listed) == 1) == [
        {"title": "Bob in #news", "body": "Lunch?", "tag": "message-41", "url": "/rooms/7/#message-41"}
    ]
    # The same message pushed again (a retry after a crash) replaces its notification: still one.
    deliver('{"type": "message", "room": 7, "message_id": 41, "title": "Bob in #news", "body": "Lunch!", "url": "/"}')
    replaced = notifications_once(lambda listed: [n["body"] for n in listed] == ["Lunch!"])
    assert [n["body"] for n in replaced] == ["Lunch!"]
    deliver('{"type": "dismiss", "room": 7, "message_id": 41}')
    assert notifications_once(lambda listed: listed == []) == []
