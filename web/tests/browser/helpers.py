"""What a person does on the chat screen, in the words of the screen (roles and labels)."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Locator, Page, expect

from web.tests.browser.harness import Person, Server, call_api


def sidebar(page: Page) -> Locator:
    return page.get_by_role("navigation", name="Rooms")


def room_link(page: Page, label: str) -> Locator:
    """The sidebar link of a room whose name starts with `label`."""
    return sidebar(page).get_by_role("link", name=re.compile(rf"^{re.escape(label)}"))


def heading(page: Page) -> Locator:
    return page.get_by_role("heading", level=1)


def composer(page: Page) -> Locator:
    return page.get_by_role("textbox", name=re.compile(r"^Message "))


def messages(page: Page) -> Locator:
    """Every delivered message of the open room (not those still being sent)."""
    return page.locator("#message-list article")


def message(page: Page, text: str) -> Locator:
    return messages(page).filter(has_text=text)


def send(page: Page, text: str) -> None:
    box = composer(page)
    box.fill(text)
    box.press("Enter")


def create_channel(page: Page, name: str, *, topic: str = "", private: bool = False) -> None:
    sidebar(page).get_by_role("button", name="Create a channel").click()
    dialog = page.get_by_role("dialog", name="Create a channel")
    dialog.get_by_label("Name").fill(name)
    if topic:
        dialog.get_by_label("Topic").fill(topic)
    if private:
        dialog.get_by_role("radio", name=re.compile("Private")).check()
    dialog.get_by_role("button", name="Create channel").click()
    expect(heading(page)).to_have_text(f"{name} (private)" if private else f"#{name}")


def join_channel(page: Page, name: str) -> None:
    sidebar(page).get_by_role("button", name="Browse channels").click()
    dialog = page.get_by_role("dialog", name="Browse channels")
    dialog.get_by_label("Search channels").fill(name)
    dialog.get_by_role("button", name=f"Join #{name}").click()
    expect(heading(page)).to_have_text(f"#{name}")


def start_direct(page: Page, *people: Person) -> None:
    sidebar(page).get_by_role("button", name="New direct message").click()
    dialog = page.get_by_role("dialog", name="New direct message")
    for person in people:
        dialog.get_by_label("Find people").fill(person.username)
        dialog.get_by_role("button", name=f"Add {person.display_name}").click()
    dialog.get_by_role("button", name=re.compile("^Start")).click()
    expect(dialog).to_be_hidden()


def act_on(page: Page, text: str, action: str) -> None:
    """Click one of a message's action buttons (they show on hover)."""
    item = message(page, text)
    item.hover()
    item.get_by_role("button", name=action).click()


# --- Setting the scene over the REST API -----------------------------------------------------------


def api_channel(server: Server, owner: Person, name: str, *, members: tuple[Person, ...] = (), **extra: Any) -> int:
    """Create a channel as `owner` and add `members`; return its id."""
    room = call_api(server, "POST", "rooms/", {"name": name, **extra}, token=owner.access)
    for member in members:
        call_api(server, "POST", f"rooms/{room['id']}/members/", {"user": member.id}, token=owner.access)
    return int(room["id"])


def api_post(server: Server, author: Person, room_id: int, body: str) -> dict[str, Any]:
    return call_api(server, "POST", f"rooms/{room_id}/messages/", {"body": body}, token=author.access)


def api_rooms(server: Server, person: Person) -> dict[int, dict[str, Any]]:
    return {room["id"]: room for room in call_api(server, "GET", "rooms/", token=person.access)}
