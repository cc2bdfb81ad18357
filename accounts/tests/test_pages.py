"""The web UI's pages through Django's test client: sign up, log in and out, the profile,
the chat screen, and the rules that keep them safe under a strict Content-Security-Policy.

What the pages do once their scripts run is tested in a real browser
(web/tests/browser/).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

from accounts.models import User
from accounts.services import tokens_for
from conftest import PASSWORD

STRONG_PASSWORD = "quiet otter paints 7 lanterns"
STATIC_JS = Path(__file__).resolve().parents[2] / "static" / "js"


def signup(client: Client, **fields: str):  # type: ignore[no-untyped-def]
    data = {"username": "dave", "email": "dave@example.com", "password": STRONG_PASSWORD, **fields}
    return client.post("/signup/", data)


def logged_in_user(client: Client) -> User | None:
    response = client.get("/api/v1/users/me/")
    return User.objects.get(pk=response.json()["id"]) if response.status_code == 200 else None


# --- Sign up ------------------------------------------------------------------------------


def test_signup_creates_the_account_and_signs_in(client, db):
    response = signup(client, display_name="Dave D")

    assert response.status_code == 302
    assert response["Location"] == "/"
    user = User.objects.get(username="dave")
    assert user.display_name == "Dave D"
    assert user.check_password(STRONG_PASSWORD)
    assert logged_in_user(client) == user


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        pytest.param({"username": "ALICE"}, "username", "That username is taken.", id="username-taken"),
        pytest.param({"username": "no spaces"}, "username", "Use 1–30 letters", id="username-invalid"),
        pytest.param({"email": "not-an-email"}, "email", "Enter a valid email address.", id="email-invalid"),
        pytest.param({"email": "alice@example.com"}, "email", "already exists", id="email-taken"),
        pytest.param({"password": "short"}, "password", "too short", id="password-short"),
        pytest.param({"password": "password"}, "password", "too common", id="password-common"),
    ],
)
def test_signup_shows_each_error_next_to_its_field(client, alice, fields, field, message):
    response = signup(client, **fields)

    assert response.status_code == 200
    html = response.content.decode()
    error = re.search(rf'<ul class="errorlist" id="id_{field}_error">(.*?)</ul>', html, re.S)
    assert error is not None, f"no error list for {field}"
    assert message in error.group(1)
    # The input points at its error and says it is invalid.
    assert re.search(rf'<input[^>]*aria-invalid="true"[^>]*id="id_{field}"', html)
    assert f"id_{field}_error" in re.search(rf'<input[^>]*id="id_{field}"[^>]*>', html).group(0)
    assert logged_in_user(client) is None


def test_signup_keeps_what_was_typed_except_the_password(client, alice):
    html = signup(client, username="alice", display_name="Someone").content.decode()

    assert 'value="Someone"' in html
    assert STRONG_PASSWORD not in html


def test_signup_goes_to_next_only_on_this_site(client, db):
    assert signup(client, username="eve", email="eve@example.com").status_code == 302
    client.logout()

    response = client.post(
        "/signup/?next=/rooms/3/",
        {"username": "dave", "email": "dave@example.com", "password": STRONG_PASSWORD},
    )
    assert response["Location"] == "/rooms/3/"
    client.logout()

    response = client.post(
        "/signup/?next=https://evil.example/",
        {"username": "fred", "email": "fred@example.com", "password": STRONG_PASSWORD},
    )
    assert response["Location"] == "/"


def test_signup_page_sends_a_signed_in_user_to_the_chat(client, alice):
    client.force_login(alice)

    assert client.get("/signup/")["Location"] == "/"


def test_signup_needs_the_csrf_token(db):
    client = Client(enforce_csrf_checks=True)

    response = client.post("/signup/", {"username": "dave", "email": "d@example.com", "password": STRONG_PASSWORD})

    assert response.status_code == 403
    assert not User.objects.filter(username="dave").exists()


# --- Log in and out -------------------------------------------------------------------------


def test_login_signs_in_and_goes_to_next(client, alice):
    response = client.post("/login/", {"username": "ALICE", "password": PASSWORD, "next": "/rooms/7/"})

    assert response.status_code == 302
    assert response["Location"] == "/rooms/7/"
    assert logged_in_user(client) == alice


def test_login_with_a_wrong_password_says_so(client, alice):
    response = client.post("/login/", {"username": "alice", "password": "wrong"})

    assert response.status_code == 200
    assert "That username and password do not match an account." in response.content.decode()
    assert logged_in_user(client) is None


def test_login_refuses_an_inactive_account_and_says_why_to_its_owner(client, alice):
    alice.is_active = False
    alice.save(update_fields=["is_active"])

    response = client.post("/login/", {"username": "alice", "password": PASSWORD})

    assert response.status_code == 200
    html = response.content.decode()
    assert "This account is deactivated." in html
    assert "do not match" not in html
    assert logged_in_user(client) is None


def test_a_wrong_password_for_an_inactive_account_gets_the_ordinary_error(client, alice):
    alice.is_active = False
    alice.save(update_fields=["is_active"])

    response = client.post("/login/", {"username": "alice", "password": "not " + PASSWORD})

    assert response.status_code == 200
    html = response.content.decode()
    # Only the right password learns the account's state: a guess reads as for any account.
    assert "That username and password do not match an account." in html
    assert "deactivated" not in html
    assert logged_in_user(client) is None


def test_an_unknown_username_gets_the_ordinary_error(client, db):
    response = client.post("/login/", {"username": "nobody", "password": PASSWORD})

    assert "That username and password do not match an account." in response.content.decode()


def test_login_form_shares_the_apis_limits_and_then_checks_no_password(client, alice, settings):
    settings.AUTH_RATE_LIMITS = {**settings.AUTH_RATE_LIMITS, "login": {"ip": "100/m", "username": "3/5m"}}
    for _ in range(3):
        assert client.post("/login/", {"username": "alice", "password": "guess"}).status_code == 200

    response = client.post("/login/", {"username": "alice", "password": PASSWORD})

    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    html = response.content.decode()
    assert "Too many attempts. Try again in" in html
    # Refused before the password is looked at: right and wrong read the same.
    assert "do not match" not in html
    assert logged_in_user(client) is None


def test_signup_form_shares_the_apis_limits(client, db, settings):
    settings.AUTH_RATE_LIMITS = {**settings.AUTH_RATE_LIMITS, "register": {"ip": "2/h", "username": "10/h"}}
    signup(client, username="one", email="one@example.com")
    client.logout()
    signup(client, username="two", email="two@example.com")
    client.logout()

    response = signup(client, username="three", email="three@example.com")

    assert response.status_code == 429
    assert "Too many attempts" in response.content.decode()
    assert 'value="three"' in response.content.decode()
    assert not User.objects.filter(username="three").exists()


def test_password_change_shares_the_apis_limits(client, alice, settings):
    settings.AUTH_RATE_LIMITS = {**settings.AUTH_RATE_LIMITS, "password": {"ip": "100/h", "username": "1/h"}}
    client.force_login(alice)
    wrong = {"form": "password", "old_password": "nope", "new_password1": STRONG_PASSWORD}
    client.post("/profile/", {**wrong, "new_password2": STRONG_PASSWORD})

    response = client.post("/profile/", {**wrong, "old_password": PASSWORD, "new_password2": STRONG_PASSWORD})

    assert response.status_code == 429
    assert "incorrect" not in response.content.decode()
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


def test_logout_is_a_post(client, alice):
    client.force_login(alice)

    assert client.get("/logout/").status_code == 405
    assert logged_in_user(client) == alice
    response = client.post("/logout/")

    assert response.status_code == 302
    assert response["Location"] == "/login/"
    assert logged_in_user(client) is None


def test_the_profile_offers_to_sign_out_everywhere_and_doing_so_logs_this_browser_out(client, alice):
    client.force_login(alice)
    html = client.get("/profile/").content.decode()
    assert 'name="form" value="everywhere"' in html
    assert ">Sign out everywhere</button>" in html

    response = client.post("/profile/", {"form": "everywhere"}, follow=True)

    assert response.redirect_chain == [("/login/", 302)]
    assert "You are signed out everywhere." in response.content.decode()
    assert logged_in_user(client) is None
    alice.refresh_from_db()
    assert alice.token_version == 1


# --- Profile ---------------------------------------------------------------------------------


def test_profile_needs_a_signed_in_user(client, db):
    response = client.get("/profile/")

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/profile/"


def test_profile_changes_the_display_name(client, alice):
    client.force_login(alice)

    response = client.post("/profile/", {"form": "profile", "display_name": "  Alice Liddell "}, follow=True)

    alice.refresh_from_db()
    assert alice.display_name == "Alice Liddell"
    assert "Your display name is saved." in response.content.decode()


def test_profile_refuses_a_too_long_display_name_next_to_the_field(client, alice):
    client.force_login(alice)

    html = client.post("/profile/", {"form": "profile", "display_name": "x" * 65}).content.decode()

    assert 'id="id_display_name_error"' in html
    alice.refresh_from_db()
    assert alice.display_name == "Alice"


def test_password_change_keeps_this_session_and_revokes_api_tokens(client, alice):
    refresh = tokens_for(alice)["refresh"]
    client.force_login(alice)

    response = client.post(
        "/profile/",
        {
            "form": "password",
            "old_password": PASSWORD,
            "new_password1": STRONG_PASSWORD,
            "new_password2": STRONG_PASSWORD,
        },
    )

    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password(STRONG_PASSWORD)
    assert logged_in_user(client) == alice
    assert BlacklistedToken.objects.filter(token__user=alice).count() == 1
    reply = client.post("/api/v1/auth/token/refresh/", {"refresh": refresh}, content_type="application/json")
    assert reply.status_code == 401


def test_password_change_with_a_wrong_current_password_says_so_next_to_it(client, alice):
    client.force_login(alice)

    html = client.post(
        "/profile/",
        {
            "form": "password",
            "old_password": "nope",
            "new_password1": STRONG_PASSWORD,
            "new_password2": STRONG_PASSWORD,
        },
    ).content.decode()

    assert re.search(r'id="id_old_password_error">.*incorrect', html, re.S)
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


def test_password_change_needs_matching_new_passwords(client, alice):
    client.force_login(alice)

    html = client.post(
        "/profile/",
        {"form": "password", "old_password": PASSWORD, "new_password1": STRONG_PASSWORD, "new_password2": "other"},
    ).content.decode()

    assert 'id="id_new_password2_error"' in html
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


# --- The chat screen ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/rooms/12/"])
def test_the_chat_screen_needs_a_signed_in_user(client, db, path):
    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={path}"


def test_the_chat_screen_carries_what_its_script_starts_from(client, alice):
    client.force_login(alice)

    response = client.get("/rooms/12/")

    html = response.content.decode()
    assert response.status_code == 200
    assert f'data-user-id="{alice.pk}"' in html
    assert 'data-max-length="4000"' in html
    assert '<script type="module" src="/static/js/app.js"></script>' in html
    assert response.cookies["csrftoken"].value


def test_the_chat_screen_escapes_the_users_name(client, make_user):
    user = make_user("sneaky", display_name='"><script>alert(1)</script>')
    client.force_login(user)

    html = client.get("/").content.decode()

    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)" in html


# --- Safe under a strict Content-Security-Policy -------------------------------------------------


class InlineCode(HTMLParser):
    """Collect what a strict CSP would block: inline scripts, handler attributes, style attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.scripts: list[dict[str, str | None]] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, _ in attrs:
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=…>")
            if name == "style":
                self.problems.append(f"<{tag} style=…>")
        if tag == "style":
            self.problems.append("<style> element")
        if tag == "script":
            self.scripts.append(dict(attrs))
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append(f"inline script: {data.strip()[:40]}")


PAGES = ["/", "/profile/", "/login/", "/signup/"]


@pytest.mark.parametrize("path", PAGES)
def test_pages_have_no_inline_script_or_style(client, alice, path):
    if path in ("/", "/profile/"):
        client.force_login(alice)
    parser = InlineCode()

    response = client.get(path)
    parser.feed(response.content.decode())

    assert response.status_code == 200
    assert parser.problems == []
    assert all(script.get("src") for script in parser.scripts)


@pytest.mark.parametrize("path", PAGES)
def test_pages_are_served_with_a_strict_policy(client, alice, path):
    if path in ("/", "/profile/"):
        client.force_login(alice)

    policy = client.get(path)["Content-Security-Policy"]

    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["connect-src"] == "'self' ws://testserver"


def test_every_script_module_and_stylesheet_exists(client, alice):
    client.force_login(alice)
    html = client.get("/").content.decode()
    referenced = re.findall(r'(?:src|href)="/static/([^"]+)"', html)
    modules = {"js/app.js"}
    pending = ["js/app.js"]
    while pending:
        source = (STATIC_JS.parent / pending.pop()).read_text()
        for name in re.findall(r'from "\./([\w-]+\.js)"', source):
            if f"js/{name}" not in modules:
                modules.add(f"js/{name}")
                pending.append(f"js/{name}")

    for path in {*referenced, *modules}:
        assert finders.find(path), f"static/{path} is missing"
    assert {"js/api.js", "js/socket.js", "js/store.js"} <= modules
