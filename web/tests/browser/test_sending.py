"""Sending in the browser: what one person types in one room is stored in the order typed,
offline or online, retries included."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.sync_api import expect

from web.tests.browser.harness import Person, Server, call_api, unique
from web.tests.browser.helpers import api_channel, heading, messages, send

pytestmark = pytest.mark.browser

# Several messages submitted in one go, as fast as a person pasting and pressing Enter.
SUBMIT_AT_ONCE = """(bodies) => {
  const box = document.querySelector("#composer-input");
  const form = document.querySelector("#composer");
  for (const body of bodies) {
    box.value = body;
    form.requestSubmit();
  }
}"""


def stored_bodies(server: Server, person: Person, room_id: int) -> list[str]:
    """The room's messages as the server stored them, in id order."""
    page = call_api(server, "GET", f"rooms/{room_id}/messages/?limit=200", token=person.access)
    return [message["body"] for message in page["results"]]


def test_six_messages_typed_offline_are_stored_in_the_order_typed(make_person, open_page, chat_server):
    alice = make_person("alice")
    room = api_channel(chat_server, alice, unique("outbox"))
    page = open_page(alice, f"/rooms/{room}/")
    page.watch.allow_console_error("ERR_INTERNET_DISCONNECTED")
    bodies = [f"Offline line {n} of 6" for n in range(1, 7)]

    page.context.set_offline(True)
    expect(page.locator("#connection")).to_have_attribute("data-state", "offline")
    for body in bodies:
        send(page, body)
    # Each shows at once, in the order typed, before anything reached the server.
    expect(page.locator("#pending-list .pending-body")).to_have_text(bodies)
    # The first holds the rest: one failure to show, with Retry.
    expect(page.get_by_text("Not sent: no connection to the server")).to_have_count(1)
    expect(page.get_by_role("button", name="Retry")).to_have_count(1)

    page.context.set_offline(False)
    expect(page.locator("#pending-list article")).to_have_count(0)
    expect(messages(page).locator(".message-body")).to_have_text(bodies)
    assert stored_bodies(chat_server, alice, room) == bodies


def test_four_messages_sent_within_a_moment_are_stored_in_the_order_typed(make_person, open_page, chat_server):
    alice = make_person("alice")
    room = api_channel(chat_server, alice, unique("burst"))
    page = open_page(alice, f"/rooms/{room}/")
    expect(heading(page)).to_have_text(re.compile("burst"))
    bodies = [f"Quick line {n} of 4" for n in range(1, 5)]

    page.evaluate(SUBMIT_AT_ONCE, bodies)

    expect(messages(page)).to_have_count(4)
    expect(page.locator("#pending-list article")).to_have_count(0)
    assert stored_bodies(chat_server, alice, room) == bodies
    expect(messages(page).locator(".message-body")).to_have_text(bodies)


def test_a_refused_send_holds_the_ones_behind_it_until_retried(make_person, open_page, chat_server):
    alice = make_person("alice")
    room = api_channel(chat_server, alice, unique("holdup"))
    page = open_page(alice, f"/rooms/{room}/")
    refused: list[str] = []

    def refuse_the_first_send(ws: Any) -> None:
        server = ws.connect_to_server()

        def from_page(text: str | bytes) -> None:
            frame = json.loads(text)
            if frame.get("type") == "message.send" and not refused:
                refused.append(frame["client_id"])
                answer = {"type": "error", "code": "unavailable", "detail": "Later.", "client_id": frame["client_id"]}
                ws.send(json.dumps(answer))
                return
            server.send(text)

        ws.on_message(from_page)

    page.route_web_socket(re.compile(r"/ws/"), refuse_the_first_send)
    page.reload()
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(heading(page)).to_have_text(re.compile("holdup"))

    send(page, "First in line")
    send(page, "Second in line")
    expect(page.get_by_text("Not sent: the server could not take it just now")).to_be_visible()
    expect(page.locator("#pending-list article").nth(1)).to_contain_text("Waiting to send…")
    assert stored_bodies(chat_server, alice, room) == []

    page.get_by_role("button", name="Retry").click()
    expect(messages(page).locator(".message-body")).to_have_text(["First in line", "Second in line"])
    assert stored_bodies(chat_server, alice, room) == ["First in line", "Second in line"]
    assert len(refused) == 1
