"""Security headers on every kind of page (issue 5, item 2), and the API docs working under the policy.

A strict Content-Security-Policy (no inline script, no eval), X-Frame-Options:
DENY, a Referrer-Policy and nosniff, on API JSON, API errors, the OpenAPI
document, the Swagger UI page and its script, the admin, the web UI's pages
and the health probes.
"""

from __future__ import annotations

import re
import shutil
import threading
from html.parser import HTMLParser
from typing import Any

import pytest
from django.test import Client

from accounts.services import tokens_for

pytestmark = pytest.mark.django_db

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def policy(response: Any) -> dict[str, list[str]]:
    header = response.get("Content-Security-Policy")
    assert header, f"no Content-Security-Policy on {response.request['PATH_INFO']}"
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def assert_strict(response: Any) -> dict[str, list[str]]:
    path = response.request["PATH_INFO"]
    assert response["X-Frame-Options"] == "DENY", path
    assert response["X-Content-Type-Options"] == "nosniff", path
    assert response["Referrer-Policy"] == "same-origin", path
    directives = policy(response)
    scripts = directives.get("script-src", directives["default-src"])
    assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts, (path, scripts)
    assert "*" not in scripts and not any(source.endswith(":") for source in scripts), (path, scripts)
    assert directives["default-src"] == ["'self'"], path
    assert directives["object-src"] == ["'none'"], path
    assert directives["frame-ancestors"] == ["'none'"], path
    assert "'self'" in directives["connect-src"], path
    assert "ws://testserver" in directives["connect-src"], path
    return directives


@pytest.fixture
def staff_client(make_user: Any) -> Client:
    client = Client()
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


def test_api_json_responses_carry_the_headers(bob: Any) -> None:
    client = Client(HTTP_AUTHORIZATION=f"Bearer {tokens_for(bob)['access']}")
    response = client.get("/api/v1/rooms/")
    assert response.status_code == 200
    assert_strict(response)


@pytest.mark.parametrize(
    ("path", "status"),
    [("/api/v1/rooms/", 401), ("/api/v1/no-such-route/", 404), ("/api/v1/rooms/99999999/", 401)],
)
def test_api_errors_carry_the_headers(path: str, status: int) -> None:
    response = Client().get(path)
    assert response.status_code == status
    assert_strict(response)


def test_the_openapi_document_carries_the_headers() -> None:
    response = Client().get("/api/schema/")
    assert response.status_code == 200
    assert_strict(response)


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_probes_carry_the_headers(path: str) -> None:
    assert_strict(Client().get(path))


def test_admin_pages_carry_the_headers(staff_client: Client) -> None:
    assert_strict(Client().get("/admin/login/"))
    for path in ("/admin/", "/admin/messaging/report/", "/admin/accounts/moderationaction/"):
        response = staff_client.get(path)
        assert response.status_code == 200, path
        assert_strict(response)


def test_admin_pages_have_no_inline_script(staff_client: Client) -> None:
    for path in ("/admin/login/", "/admin/", "/admin/messaging/message/", "/admin/messaging/report/"):
        client = Client() if path == "/admin/login/" else staff_client
        assert inline_scripts(client.get(path).content.decode()) == [], path


@pytest.mark.parametrize("path", ["/login/", "/signup/", "/"])
def test_web_ui_pages_carry_the_headers(path: str) -> None:
    response = Client().get(path)
    assert response.status_code in (200, 302), path
    assert_strict(response)


def test_a_static_file_is_never_sniffed_as_something_else() -> None:
    response = Client().get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert response.status_code == 200
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "javascript" in response["Content-Type"]


# --- The Swagger UI page under the policy ---------------------------------------------------------


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inside: str | None = None
        self.text: dict[int, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        for name, _ in attrs:
            assert not name.startswith("on"), f"event handler attribute {name} on <{tag}>"
            assert name != "style", f"style attribute on <{tag}>"

    def handle_data(self, data: str) -> None:
        if self.tags and data.strip():
            index = len(self.tags) - 1
            self.text[index] = self.text.get(index, "") + data


def inline_scripts(document: str) -> list[str]:
    """Return the inline scripts (no src, not a JSON data block) of a document."""
    parser = Tags()
    parser.feed(document)
    return [
        parser.text.get(index, "")
        for index, (tag, attrs) in enumerate(parser.tags)
        if tag == "script" and not attrs.get("src") and attrs.get("type") not in ("application/json",)
    ]


def test_the_docs_page_has_no_inline_script_and_nonces_its_one_style_block() -> None:
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    directives = assert_strict(response)
    document = response.content.decode()
    assert inline_scripts(document) == []
    parser = Tags()
    parser.feed(document)
    nonces = [attrs.get("nonce") for tag, attrs in parser.tags if tag == "style"]
    assert nonces and all(nonces), "every <style> must carry the nonce"
    assert f"'nonce-{nonces[0]}'" in directives["style-src"]
    scripts = [attrs["src"] for tag, attrs in parser.tags if tag == "script"]
    assert all(src and (src.startswith("/static/") or src.startswith("/api/docs/")) for src in scripts), scripts


def test_the_docs_start_up_script_is_served_from_this_origin() -> None:
    response = Client().get("/api/docs/?script=")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle" in response.content
    assert re.search(rb"/api/schema/", response.content)


def test_each_response_gets_its_own_nonce() -> None:
    first = policy(Client().get("/api/docs/"))["style-src"]
    second = policy(Client().get("/api/docs/"))["style-src"]
    assert first != second


@pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Chromium (apt-get install chromium)")
def test_swagger_ui_renders_in_chromium_without_a_single_csp_violation(live_server: Any) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    result: dict[str, Any] = {}

    def browse() -> None:
        # Playwright's sync API runs an event loop; keep it off the test's thread, where Django forbids one.
        try:
            with sync_api.sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                page = browser.new_page()
                console: list[str] = []
                page.on("console", lambda message: console.append(message.text))
                page.goto(f"{live_server.url}/api/docs/")
                page.wait_for_selector(".swagger-ui .opblock", timeout=20_000)
                result["operations"] = page.locator(".swagger-ui .opblock").count()
                result["console"] = console
                browser.close()
        except Exception as exc:  # reported on the test's thread
            result["error"] = exc

    thread = threading.Thread(target=browse)
    thread.start()
    thread.join(60)
    if "error" in result:
        raise result["error"]
    assert result["operations"] > 20
    violations = [line for line in result["console"] if "Content Security Policy" in line]
    assert violations == []
