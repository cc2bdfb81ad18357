"""Fixtures of the browser tests: the server, Chromium, people and signed-in pages (see harness.py)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from web.tests.browser.harness import (
    CHROMIUM,
    CHROMIUM_ARGS,
    EXPECT_TIMEOUT_MS,
    PASSWORD,
    Person,
    Server,
    Watched,
    call_api,
    sign_in,
    start_server,
    unique,
)

try:
    import playwright  # noqa: F401
except ImportError:  # pragma: no cover - Playwright comes with requirements-dev.txt
    # The test modules import it; without it they are left out, or fail loudly in CI.
    if os.environ.get("REQUIRE_SERVICES") != "1":
        collect_ignore_glob = ["test_*.py"]


def _unavailable(reason: str) -> None:
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


# Package scope: the Playwright driver keeps an asyncio loop running in this
# thread, which would break async_to_sync in the rest of the suite. Leaving
# this package tears it down.
@pytest.fixture(scope="package")
def chat_server(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("chat-server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        _unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed")
    with sync_playwright() as playwright:
        from playwright.sync_api import expect

        expect.set_options(timeout=EXPECT_TIMEOUT_MS)
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def make_person(chat_server: Server) -> Callable[[str], Person]:
    """Register someone with a unique username starting with `stem`; display name is the stem, capitalised."""

    def make(stem: str) -> Person:
        username = unique(stem)
        reply = call_api(
            chat_server,
            "POST",
            "auth/register/",
            {
                "username": username,
                "email": f"{username}@example.com",
                "password": PASSWORD,
                "display_name": stem.capitalize(),
            },
        )
        return Person(id=reply["user"]["id"], username=username, display_name=stem.capitalize(), access=reply["access"])

    return make


@pytest.fixture
def open_page(browser: Any, chat_server: Server) -> Iterator[Callable[..., Any]]:
    """Open a signed-in chat page for a person, in a browser context of its own.

    Keyword arguments go to `browser.new_context` (viewport, color_scheme,
    timezone_id…); `init_script` runs in every document before the page's
    own scripts. The page's `.watch` holds the errors it logged.
    """
    opened: list[Watched] = []

    def open_for(person: Person | None, path: str = "/", *, init_script: str = "", **context_options: Any) -> Any:
        options = {"viewport": {"width": 1280, "height": 800}, "locale": "en-US", **context_options}
        context = browser.new_context(base_url=chat_server.url, **options)
        context.set_default_timeout(EXPECT_TIMEOUT_MS)
        if init_script:
            context.add_init_script(init_script)
        page = context.new_page()
        watched = Watched(page=page, context=context)
        page.on("pageerror", lambda error: watched.errors.append(f"uncaught: {error}"))
        page.on(
            "console",
            lambda message: watched.errors.append(f"console: {message.text}") if message.type == "error" else None,
        )
        opened.append(watched)
        page.watch = watched
        if person is not None:
            sign_in(page, person, path)
        elif path:
            page.goto(path)
        return page

    yield open_for
    try:
        for watched in opened:
            assert watched.unexpected_errors() == [], "the page logged errors"
    finally:
        for watched in opened:
            watched.context.close()
