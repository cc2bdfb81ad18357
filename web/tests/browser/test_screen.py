"""The chat screen itself: first visit, keyboard, phone width, dark mode, history
paging, local times, typing, presence, the title and desktop notifications."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from web.tests.browser.harness import PASSWORD, call_api, unique
from web.tests.browser.helpers import (
    api_channel,
    api_post,
    composer,
    heading,
    message,
    messages,
    room_link,
    send,
    sidebar,
)

pytestmark = pytest.mark.browser


def test_a_newcomer_signs_up_and_lands_on_a_working_screen(open_page, make_person):
    taken = make_person("taken")
    page = open_page(None, "/")
    # Django's log-in redirect, then the way to sign up.
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    page.get_by_role("link", name="Create an account").click()

    page.get_by_label("Username").fill(taken.username)
    page.get_by_label("Email address").fill("someone@example.com")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Sign up").click()
    # Each problem is shown next to its field and tied to it for screen readers.
    expect(page.get_by_label("Username")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Username")).to_have_accessible_description(re.compile("That username is taken"))
    expect(page.get_by_label("Password")).to_have_accessible_description(re.compile("too short"))

    name = unique("newbie")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Display name").fill("New Person")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()

    # The server is not empty: a newcomer starts in #general, which everyone joins.
    expect(heading(page)).to_have_text("#general")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator("#connection")).to_have_text("Connected")
    for action in ("Create a channel", "Browse channels", "New direct message"):
        expect(sidebar(page).get_by_role("button", name=action)).to_be_visible()
    # Served with a policy that forbids inline script; the page works under it.
    response = page.request.get("/")
    assert "script-src 'self'" in response.headers["content-security-policy"]


def test_keyboard_alt_arrows_switch_rooms_and_escape_cancels_an_edit(make_person, open_page, chat_server):
    alice = make_person("alice")
    first = api_channel(chat_server, alice, unique("aaa"))
    api_channel(chat_server, alice, unique("bbb"))
    page = open_page(alice, f"/rooms/{first}/")
    expect(composer(page)).to_be_focused()

    page.keyboard.press("Alt+ArrowDown")
    expect(heading(page)).to_have_text(re.compile("^#bbb"))
    expect(page).to_have_url(re.compile(r"/rooms/\d+/$"))
    page.keyboard.press("Alt+ArrowUp")
    expect(heading(page)).to_have_text(re.compile("^#aaa"))

    send(page, "Typo here")
    expect(message(page, "Typo here")).to_be_visible()
    composer(page).press("ArrowUp")  # edit my last message
    editor = page.get_by_role("textbox", name="Edit message")
    expect(editor).to_be_focused()
    editor.fill("Something else entirely")
    editor.press("Escape")
    expect(editor).to_have_count(0)
    expect(message(page, "Typo here")).not_to_contain_text("(edited)")
    expect(composer(page)).to_be_focused()


def test_the_screen_works_at_phone_width(make_person, open_page, chat_server):
    alice = make_person("alice")
    room = api_channel(chat_server, alice, unique("pocket"))
    page = open_page(alice, f"/rooms/{room}/", viewport={"width": 390, "height": 844}, has_touch=True)

    expect(sidebar(page)).to_be_hidden()
    menu = page.get_by_role("button", name="Rooms")
    expect(menu).to_have_attribute("aria-expanded", "false")
    send(page, "Sent from a phone")
    expect(message(page, "Sent from a phone")).to_be_visible()
    # No hover on a touch screen: a tap shows a message's actions.
    edit = message(page, "Sent from a phone").get_by_role("button", name="Edit")
    expect(edit).to_be_hidden()
    message(page, "Sent from a phone").locator(".message-body").tap()
    expect(edit).to_be_visible()

    menu.click()
    expect(sidebar(page)).to_be_visible()
    room_link(page, "pocket").click()
    expect(sidebar(page)).to_be_hidden()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.parametrize(("scheme", "background"), [("light", "rgb(255, 255, 255)"), ("dark", "rgb(22, 24, 31)")])
def test_colours_follow_the_system_scheme(make_person, open_page, scheme, background):
    page = open_page(make_person("alice"), color_scheme=scheme)

    assert page.evaluate("getComputedStyle(document.querySelector('.room')).backgroundColor") == background


def test_scrolling_up_loads_older_history(make_person, open_page, chat_server):
    alice = make_person("alice")
    room = api_channel(chat_server, alice, unique("history"))
    for n in range(1, 131):
        api_post(chat_server, alice, room, f"Message number {n}.")
    page = open_page(alice, f"/rooms/{room}/")

    expect(message(page, "Message number 130.")).to_be_in_viewport()
    expect(messages(page)).to_have_count(50)
    beginning = page.get_by_text(re.compile("This is the very beginning of"))
    for _ in range(10):
        if beginning.is_visible():
            break
        page.locator("#messages").evaluate("element => element.scrollTop = 0")
        page.wait_for_timeout(300)
    expect(beginning).to_be_visible()
    expect(messages(page)).to_have_count(130)
    expect(message(page, "Message number 1.")).to_have_count(1)


def test_times_show_in_the_viewers_time_zone(make_person, open_page, chat_server):
    alice = make_person("alice")
    room = api_channel(chat_server, alice, unique("clock"))
    posted = api_post(chat_server, alice, room, "What time is it?")
    page = open_page(alice, f"/rooms/{room}/", timezone_id="Asia/Kolkata")

    local = datetime.fromisoformat(posted["created_at"]).astimezone(ZoneInfo("Asia/Kolkata"))
    hour = local.hour % 12 or 12
    expected = rf"^{hour}:{local.minute:02d}\s{'AM' if local.hour < 12 else 'PM'}$"
    expect(message(page, "What time is it?").locator("time")).to_have_text(re.compile(expected))
    expect(page.get_by_role("separator").filter(has_text=re.compile("Today|Yesterday|, "))).to_have_count(1)


def test_typing_and_presence_show_to_the_other_person(make_person, open_page, chat_server):
    alice, bob = make_person("alice"), make_person("bob")
    dm = call_api(chat_server, "POST", "dms/", {"users": [bob.id]}, token=alice.access)["id"]
    # Presence shows through a DM only once someone has written in it.
    api_post(chat_server, alice, dm, "Are you around?")
    alice_page = open_page(alice, f"/rooms/{dm}/")
    expect(room_link(alice_page, "Bob").locator(".presence-dot")).not_to_have_class(re.compile("online"))

    bob_page = open_page(bob, f"/rooms/{dm}/")
    expect(room_link(alice_page, "Bob").locator(".presence-dot")).to_have_class(re.compile("online"))
    composer(bob_page).press_sequentially("Hel", delay=50)
    expect(alice_page.get_by_text("Bob is typing…")).to_be_visible()
    composer(bob_page).press("Enter")
    expect(message(alice_page, "Hel")).to_be_visible()
    expect(alice_page.get_by_text("Bob is typing…")).to_be_hidden()

    bob_page.context.close()
    # Offline after the server's grace period for reloads.
    expect(room_link(alice_page, "Bob").locator(".presence-dot")).not_to_have_class(
        re.compile("online"), timeout=15_000
    )


NOTIFICATION_SPY = """
window.__notifications = [];
window.Notification = class {
  static permission = "granted";
  static requestPermission() { return Promise.resolve("granted"); }
  constructor(title, options) { window.__notifications.push({ title, body: options.body }); }
  addEventListener() {}
  close() {}
};
// The tab is in the background.
Object.defineProperty(document, "visibilityState", { get: () => "hidden" });
Document.prototype.hasFocus = () => false;
"""


def test_background_tab_notifies_of_dms_and_mentions_and_counts_in_the_title(make_person, open_page, chat_server):
    alice, bob = make_person("alice"), make_person("bob")
    name = unique("news")
    room = api_channel(chat_server, alice, name, members=(bob,))
    dm = call_api(chat_server, "POST", "dms/", {"users": [alice.id]}, token=bob.access)["id"]
    page = open_page(alice, f"/rooms/{room}/", init_script=NOTIFICATION_SPY)

    api_post(chat_server, bob, room, "Just chatting")
    api_post(chat_server, bob, room, f"Look @{alice.username}")
    api_post(chat_server, bob, dm, "A private word")

    expect(page).to_have_title(re.compile(r"^\(3 · @1\) #news"))
    expect(room_link(page, "Bob")).to_have_accessible_name(re.compile("1 unread"))
    notifications = page.evaluate("window.__notifications")
    assert notifications == [
        {"title": f"Bob in #{name}", "body": f"Look @{alice.username}"},
        {"title": "Bob", "body": "A private word"},
    ]
