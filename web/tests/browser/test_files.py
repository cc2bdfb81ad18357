"""Files in the browser: attached by drag and drop, paste and the attach button, seen by the other
person with thumbnails that appear live, a full-size viewer, downloads, and uploads that fail
saying why."""

from __future__ import annotations

import base64
import io
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from web.tests.browser.harness import REPO_ROOT, Server, call_api, unique
from web.tests.browser.helpers import api_channel, composer, message, messages, send

pytestmark = pytest.mark.browser

# A PDF small enough to read: one empty page.
PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)

# Build a File in the page from base64 bytes and hand it over as a DataTransfer, as a drag or a paste carries it.
DATA_TRANSFER = """([name, type, data]) => {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type }));
  return transfer;
}"""

PASTE = """([name, type, data]) => {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type }));
  const event = new ClipboardEvent("paste", { clipboardData: transfer, bubbles: true, cancelable: true });
  document.querySelector("#composer-input").dispatchEvent(event);
}"""


def png(width: int, height: int, colour: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


def drop_file(page: Page, name: str, content_type: str, data: bytes) -> None:
    """Drag a file from the desktop and drop it on the conversation."""
    transfer = page.evaluate_handle(DATA_TRANSFER, [name, content_type, base64.b64encode(data).decode()])
    for kind in ("dragenter", "dragover"):
        page.dispatch_event("#messages", kind, {"dataTransfer": transfer})
    expect(page.get_by_text("Drop files to attach them to your message")).to_be_visible()
    page.dispatch_event("#messages", "drop", {"dataTransfer": transfer})


def paste_file(page: Page, name: str, content_type: str, data: bytes) -> None:
    composer(page).focus()
    page.evaluate(PASTE, [name, content_type, base64.b64encode(data).decode()])


def tray(page: Page) -> Any:
    return page.get_by_role("list", name="Files to send")


@pytest.fixture
def start_worker(chat_server: Server, tmp_path: Path) -> Iterator[Callable[[], None]]:
    """Start the job worker that makes thumbnails, when the test says so."""
    processes: list[subprocess.Popen[bytes]] = []
    log = (tmp_path / "worker.log").open("ab")

    def start() -> None:
        processes.append(
            subprocess.Popen(
                [sys.executable, "manage.py", "run_worker", "--no-scheduler"],
                cwd=REPO_ROOT,
                env=chat_server.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    log.close()


def test_images_dropped_and_pasted_reach_the_other_person_with_live_thumbnails_and_a_viewer(
    make_person, open_page, chat_server, start_worker
):
    alice, bob = make_person("alice"), make_person("bob")
    room = api_channel(chat_server, alice, unique("photos"), members=(bob,))
    alice_page = open_page(alice, f"/rooms/{room}/")
    # Bob reads on a phone, in dark mode.
    bob_page = open_page(bob, f"/rooms/{room}/", viewport={"width": 390, "height": 844}, color_scheme="dark")

    drop_file(alice_page, "harbour.png", "image/png", png(1200, 800, "navy"))
    expect(alice_page.get_by_text("Drop files to attach them to your message")).to_be_hidden()
    paste_file(alice_page, "image.png", "image/png", png(300, 600, "orange"))
    items = tray(alice_page).get_by_role("listitem")
    expect(items).to_have_count(2)
    expect(items.nth(0)).to_contain_text("harbour.png")
    # A pasted screenshot gets a name worth keeping.
    expect(items.nth(1)).to_contain_text(re.compile(r"Pasted image \d{4}-\d\d-\d\d \d\d\.\d\d\.\d\d\.png"))
    expect(items.filter(has_text="Ready")).to_have_count(2)
    pasted_name = items.nth(1).locator(".tray-name").inner_text()

    composer(alice_page).fill("The view from the office")
    composer(alice_page).press("Enter")
    expect(tray(alice_page)).to_be_hidden()

    posted = message(bob_page, "The view from the office")
    harbour = posted.get_by_role("button", name="View harbour.png full size")
    pasted = posted.get_by_role("button", name=f"View {pasted_name} full size")
    expect(harbour).to_be_visible()
    expect(pasted).to_be_visible()
    # No worker yet: the previews are being made.
    expect(posted.get_by_text("Preparing preview…")).to_have_count(2)

    # The worker makes the thumbnails; message.updated brings them to Bob's open page.
    start_worker()
    thumbnail = harbour.get_by_role("img", name="harbour.png")
    expect(thumbnail).to_have_attribute("src", re.compile(r"^/api/v1/files/\d+/thumbnail/$"))
    expect(pasted.get_by_role("img")).to_have_attribute("src", re.compile(r"/thumbnail/$"))
    expect(posted.get_by_text("Preparing preview…")).to_have_count(0)
    bob_page.wait_for_function(
        "(img) => img.complete && img.naturalWidth > 0", arg=thumbnail.element_handle(), timeout=10_000
    )
    assert max(thumbnail.evaluate("(img) => [img.naturalWidth, img.naturalHeight]")) <= 400

    # The full-size viewer: opened from the keyboard, arrows move between the images, Escape closes.
    harbour.focus()
    bob_page.keyboard.press("Enter")
    viewer = bob_page.get_by_role("dialog", name="harbour.png")
    expect(viewer).to_be_visible()
    full = viewer.get_by_role("img", name="harbour.png")
    expect(full).to_have_attribute("src", re.compile(r"^/api/v1/files/\d+/$"))
    bob_page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=full.element_handle())
    assert full.evaluate("(img) => [img.naturalWidth, img.naturalHeight]") == [1200, 800]
    box = full.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    expect(viewer.get_by_text("1 of 2")).to_be_visible()
    bob_page.keyboard.press("ArrowRight")
    expect(bob_page.get_by_role("dialog", name=pasted_name)).to_be_visible()
    bob_page.keyboard.press("Escape")
    expect(bob_page.get_by_role("dialog")).to_have_count(0)
    expect(harbour).to_be_focused()


def test_a_pdf_attached_with_the_button_is_a_card_the_other_person_downloads(make_person, open_page, chat_server):
    alice, bob = make_person("alice"), make_person("bob")
    room = api_channel(chat_server, alice, unique("reports"), members=(bob,))
    alice_page = open_page(alice, f"/rooms/{room}/")
    bob_page = open_page(bob, f"/rooms/{room}/")

    with alice_page.expect_file_chooser() as chooser:
        alice_page.get_by_role("button", name="Attach files").click()
    chooser.value.set_files([{"name": "Q3 report.pdf", "mimeType": "application/pdf", "buffer": PDF}])
    expect(tray(alice_page).get_by_role("listitem").filter(has_text="Ready")).to_have_count(1)
    # Files alone make a message: no text needed.
    composer(alice_page).press("Enter")
    expect(tray(alice_page)).to_be_hidden()

    card = bob_page.locator("#message-list .file-card").filter(has_text="Q3 report.pdf")
    expect(card).to_contain_text("PDF")
    expect(card).to_contain_text(f"{len(PDF)} bytes")
    with bob_page.expect_download() as download:
        card.get_by_role("link", name=f"Download Q3 report.pdf ({len(PDF)} bytes)").click()
    assert download.value.suggested_filename == "Q3 report.pdf"
    assert Path(download.value.path()).read_bytes() == PDF


def test_a_failed_upload_says_why_and_retries_and_an_upload_can_be_cancelled_or_removed(
    make_person, open_page, chat_server
):
    alice = make_person("alice")
    room = api_channel(chat_server, alice, unique("flaky"))
    page = open_page(alice, f"/rooms/{room}/")
    page.watch.allow_console_error("ERR_INTERNET_DISCONNECTED")
    items = tray(page).get_by_role("listitem")

    # Offline: the upload fails, says so, and goes through on Retry once back online.
    page.context.set_offline(True)
    drop_file(page, "notes.txt", "text/plain", b"Remember the milk.\n")
    failed = items.filter(has_text="notes.txt")
    expect(failed).to_contain_text("Not uploaded. You are offline")
    composer(page).press("Enter")
    expect(page.get_by_role("alert").filter(has_text="retry it or remove it")).to_be_visible()
    page.context.set_offline(False)
    failed.get_by_role("button", name="Retry uploading notes.txt").click()
    expect(failed).to_contain_text("Ready")

    # Too big: refused at once, with the limit, without sending a byte; no retry for that.
    huge = page.evaluate_handle(
        """() => {
          const transfer = new DataTransfer();
          transfer.items.add(new File([new Uint8Array(26 * 1024 * 1024)], "video.mov", { type: "video/quicktime" }));
          return transfer;
        }"""
    )
    page.dispatch_event("#messages", "drop", {"dataTransfer": huge})
    too_big = items.filter(has_text="video.mov")
    expect(too_big).to_contain_text("Not uploaded. The file is too big: 26 MB, the limit is 25 MB.")
    expect(too_big.get_by_role("button", name="Retry uploading video.mov")).to_have_count(0)
    too_big.get_by_role("button", name="Remove video.mov").click()
    expect(too_big).to_have_count(0)

    # An upload held on its way can be cancelled.
    held: list[Any] = []
    page.route(re.compile(r"/uploads/$"), lambda route: held.append(route))
    drop_file(page, "slow.bin", "application/octet-stream", b"\0" * 4096)
    slow = items.filter(has_text="slow.bin")
    expect(slow.get_by_role("progressbar", name="Uploading slow.bin")).to_be_visible()
    slow.get_by_role("button", name="Cancel uploading slow.bin").click()
    expect(slow).to_have_count(0)
    page.unroute(re.compile(r"/uploads/$"))

    # What is left goes: one message with the file that made it.
    composer(page).fill("Shopping list")
    composer(page).press("Enter")
    posted = message(page, "Shopping list")
    expect(posted.locator(".file-card")).to_have_count(1)
    expect(posted.locator(".file-card")).to_contain_text("notes.txt")


def test_a_message_sent_while_its_file_uploads_waits_for_it_and_keeps_its_place(make_person, open_page, chat_server):
    alice = make_person("alice")
    room = api_channel(chat_server, alice, unique("queue"))
    page = open_page(alice, f"/rooms/{room}/")
    held: list[Any] = []
    page.route(re.compile(r"/uploads/$"), lambda route: held.append(route))

    drop_file(page, "plan.txt", "text/plain", b"The plan.\n")
    expect(tray(page).get_by_role("progressbar", name="Uploading plan.txt")).to_be_visible()
    send(page, "Here is the plan")
    send(page, "Comments welcome")
    # Both wait, in the order typed: the first for its file, the second for the first.
    pending = page.locator("#pending-list article")
    expect(pending).to_have_count(2)
    expect(pending.nth(0)).to_contain_text("Uploading files…")
    expect(pending.nth(0).get_by_role("progressbar", name="Uploading plan.txt")).to_be_visible()
    expect(pending.nth(1)).to_contain_text("Waiting to send…")
    for _ in range(50):  # the held upload reaches the route within moments
        if held:
            break
        page.wait_for_timeout(100)
    assert call_api(chat_server, "GET", f"rooms/{room}/messages/", token=alice.access)["results"] == []

    held[0].continue_()
    expect(pending).to_have_count(0)
    expect(messages(page).locator(".message-body")).to_have_text(["Here is the plan", "Comments welcome"])
    stored = call_api(chat_server, "GET", f"rooms/{room}/messages/", token=alice.access)["results"]
    assert [message["body"] for message in stored] == ["Here is the plan", "Comments welcome"]
    assert [file["name"] for file in stored[0]["attachments"]] == ["plan.txt"]
    assert stored[1]["attachments"] == []
    page.unroute(re.compile(r"/uploads/$"))


def test_a_sent_message_whose_file_fails_to_upload_holds_its_place_until_retried(make_person, open_page, chat_server):
    alice = make_person("alice")
    room = api_channel(chat_server, alice, unique("retry"))
    page = open_page(alice, f"/rooms/{room}/")
    page.watch.allow_console_error("ERR_FAILED")
    held: list[Any] = []
    page.route(re.compile(r"/uploads/$"), lambda route: held.append(route))

    drop_file(page, "minutes.txt", "text/plain", b"Minutes.\n")
    send(page, "The minutes")
    send(page, "Read them before Friday")
    for _ in range(50):  # the held upload reaches the route within moments
        if held:
            break
        page.wait_for_timeout(100)
    held[0].abort()  # the connection drops under the upload
    page.unroute(re.compile(r"/uploads/$"))

    pending = page.locator("#pending-list article")
    expect(pending.nth(0)).to_contain_text("Not sent: minutes.txt was not uploaded. Could not reach the server.")
    expect(pending.nth(1)).to_contain_text("Waiting to send…")
    pending.nth(0).get_by_role("button", name="Retry").click()
    expect(pending).to_have_count(0)
    stored = call_api(chat_server, "GET", f"rooms/{room}/messages/", token=alice.access)["results"]
    assert [message["body"] for message in stored] == ["The minutes", "Read them before Friday"]
    assert [file["name"] for file in stored[0]["attachments"]] == ["minutes.txt"]
