"""Single sign-on against a real OpenID provider started here on loopback (django-oauth-toolkit, OIDC mode).

The provider is its own process with its own database and RSA key
(accounts/tests/oidc_provider). The chat server's side runs in the test
client; it reaches the provider over HTTP for discovery, the token, the
keys and the user's claims, as in production. The person's browser at the
provider is a requests session that logs in there.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import SecurityLogEntry, User
from conftest import PASSWORD

REPO = Path(__file__).resolve().parents[2]
CLIENT_ID = "chat-test-client"
CLIENT_SECRET = "chat-test-secret-0123456789"
PROVIDER_PASSWORD = "provider password 42"
START_SECONDS = 30


@dataclass
class Provider:
    url: str
    process: subprocess.Popen[bytes]

    @property
    def issuer(self) -> str:
        return f"{self.url}/o"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    state = tmp_path_factory.mktemp("oidc-provider")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = state / "key.pem"
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "accounts.tests.oidc_provider.settings",
        "OIDC_PROVIDER_DIR": str(state),
        "OIDC_RSA_KEY_FILE": str(key_file),
        "PYTHONPATH": str(REPO),
    }
    spec = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uri": "http://testserver/oidc/callback/",
        "people": [
            {"username": "pat", "email": "pat@example.com", "password": PROVIDER_PASSWORD},
            {"username": "alice.corp", "email": "ALICE@example.com", "password": PROVIDER_PASSWORD},
            {
                "username": "sam",
                "email": "sam@example.com",
                "password": PROVIDER_PASSWORD,
                "last_name": "unverified",
            },
            {"username": "bob", "email": "bob.other@example.com", "password": PROVIDER_PASSWORD},
        ],
    }
    setup = REPO / "accounts" / "tests" / "oidc_provider" / "setup_provider.py"
    subprocess.run([sys.executable, str(setup), json.dumps(spec)], env=env, cwd=REPO, check=True, timeout=120)  # noqa: S603
    port = _free_port()
    log = (state / "provider.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 — our interpreter, Django's own server
        [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{port}", "--noreload", "--nothreading"],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    running = Provider(url=f"http://127.0.0.1:{port}", process=process)
    deadline = time.monotonic() + START_SECONDS
    try:
        while True:
            try:
                if requests.get(f"{running.issuer}/.well-known/openid-configuration", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"the OpenID provider did not start:\n{(state / 'provider.log').read_text()}")
            time.sleep(0.2)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


@pytest.fixture
def sso(provider, settings):  # type: ignore[no-untyped-def]
    settings.OIDC_ISSUER = provider.issuer
    settings.OIDC_CLIENT_ID = CLIENT_ID
    settings.OIDC_CLIENT_SECRET = CLIENT_SECRET
    settings.OIDC_NAME = "Corp ID"
    cache.delete(f"oidc:discovery:{provider.issuer}")
    return provider


def provider_callback(client: Client, provider: Provider, username: str) -> str:
    """Start signing in at the chat server and log in at the provider; return the callback URL's path and query."""
    start = client.get("/oidc/authenticate/?next=/profile/")
    assert start.status_code == 302, start.content
    authorize = start["Location"]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(authorize).query)
    assert {"state", "nonce", "code_challenge"} <= set(query)
    assert query["code_challenge_method"] == ["S256"]
    browser = requests.Session()
    to_login = browser.get(authorize, allow_redirects=False, timeout=10)
    login_url = provider.url + to_login.headers["Location"]
    browser.get(login_url, timeout=10)
    logged_in = browser.post(
        login_url,
        data={"username": username, "password": PROVIDER_PASSWORD, "csrfmiddlewaretoken": browser.cookies["csrftoken"]},
        allow_redirects=False,
        timeout=10,
    )
    assert logged_in.status_code == 302, logged_in.text
    back = browser.get(provider.url + logged_in.headers["Location"], allow_redirects=False, timeout=10)
    callback = back.headers["Location"]
    assert callback.startswith("http://testserver/oidc/callback/"), callback
    return callback.removeprefix("http://testserver")


def signed_in_as(client: Client) -> str | None:
    response = client.get("/api/v1/users/me/")
    return response.json()["username"] if response.status_code == 200 else None


@pytest.mark.django_db
def test_first_sign_in_creates_an_account_with_a_free_username_and_no_password(sso):
    # Someone else has the provider's username here: the new account gets another.
    User.objects.create_user(username="pat", email="another.pat@example.com", password=PASSWORD)
    client = Client()

    response = client.get(provider_callback(client, sso, "pat"))

    assert response.status_code == 302
    assert response["Location"] == "/profile/"
    user = User.objects.get(email="pat@example.com")
    assert user.username == "pat2"
    assert not user.has_usable_password()
    assert signed_in_as(client) == "pat2"
    assert SecurityLogEntry.objects.filter(user=user, kind="sign_in", via="sso").exists()


@pytest.mark.django_db
def test_an_existing_account_is_matched_by_verified_email(sso, alice):
    client = Client()

    client.get(provider_callback(client, sso, "alice.corp"))

    assert signed_in_as(client) == "alice"
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_an_unverified_email_signs_in_nobody(sso):
    client = Client()

    response = client.get(provider_callback(client, sso, "sam"), follow=True)

    assert b"Signing in with Corp ID did not work" in response.content
    assert signed_in_as(client) is None
    assert not User.objects.filter(email="sam@example.com").exists()


@pytest.mark.django_db
def test_a_callback_with_a_state_this_browser_did_not_start_is_refused(sso):
    client = Client()
    callback = provider_callback(client, sso, "pat")
    forged = callback.replace("state=", "state=x")

    response = client.get(forged)

    assert response.status_code == 302
    assert signed_in_as(client) is None
    # And another browser cannot use this one's callback either.
    stranger = Client()
    stranger.get(callback)
    assert signed_in_as(stranger) is None


@pytest.mark.django_db
def test_a_callback_works_once(sso):
    client = Client()
    callback = provider_callback(client, sso, "pat")
    client.get(callback)
    client.post("/logout/")

    client.get(callback)

    assert signed_in_as(client) is None


@pytest.mark.django_db
def test_an_id_token_with_another_nonce_is_refused(sso):
    client = Client()
    callback = provider_callback(client, sso, "pat")
    session = client.session
    for entry in session["oidc_states"].values():
        entry["nonce"] = "not-the-one-sent"
    session.save()

    client.get(callback)

    assert signed_in_as(client) is None


@pytest.mark.django_db
def test_a_provider_that_is_down_gets_a_clear_page(settings):
    settings.OIDC_ISSUER = f"http://127.0.0.1:{_free_port()}/o"
    settings.OIDC_CLIENT_ID = CLIENT_ID
    settings.OIDC_NAME = "Corp ID"

    response = Client().get("/oidc/authenticate/")

    assert response.status_code == 503
    assert b"Corp ID is not answering" in response.content


@pytest.mark.django_db
def test_the_login_page_offers_the_provider(sso):
    page = Client().get("/login/")

    assert b"Sign in with Corp ID" in page.content


@pytest.mark.django_db
def test_sso_only_turns_password_sign_in_and_sign_up_off_except_for_staff(sso, settings, alice, staff):
    settings.SSO_ONLY = True
    api = APIClient()

    refused = api.post("/api/v1/auth/token/", {"username": "alice", "password": PASSWORD}, format="json")
    allowed = api.post("/api/v1/auth/token/", {"username": staff.username, "password": PASSWORD}, format="json")
    web = Client().post("/login/", {"username": "alice", "password": PASSWORD})
    register = api.post(
        "/api/v1/auth/register/",
        {"username": "newbie", "email": "n@example.com", "password": "quiet otter paints 7 lanterns"},
        format="json",
    )

    assert refused.status_code == 401 and "Corp ID" in refused.json()["detail"]
    assert allowed.status_code == 200
    assert web.status_code == 200 and b"Password sign-in is off here" in web.content
    assert register.status_code == 403
    assert b"Create an account" not in Client().get("/login/").content


@pytest.mark.django_db
def test_an_id_token_not_signed_by_the_providers_key_is_refused(sso):
    """The keys the provider publishes are swapped for another key under the same id: the signature fails."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from jwt.algorithms import RSAAlgorithm

    real = requests.get(f"{sso.issuer}/.well-known/jwks.json", timeout=10).json()
    impostor = json.loads(
        RSAAlgorithm.to_jwk(rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key())
    )
    impostor.update(kid=real["keys"][0]["kid"], alg="RS256", use="sig")
    body = json.dumps({"keys": [impostor]}).encode()

    class Keys(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Keys)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = Client()
        callback = provider_callback(client, sso, "pat")
        document = requests.get(f"{sso.issuer}/.well-known/openid-configuration", timeout=10).json()
        document["jwks_uri"] = f"http://127.0.0.1:{server.server_port}/jwks.json"
        cache.set(f"oidc:discovery:{sso.issuer}", document, 60)

        client.get(callback)

        assert signed_in_as(client) is None
        assert not User.objects.filter(email="pat@example.com").exists()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
