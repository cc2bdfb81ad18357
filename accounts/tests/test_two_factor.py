"""Two-factor sign-in with an authenticator app (TOTP) and recovery codes, over the API and the web login.

Codes are computed here from the secret the server hands out, at a clock
the tests set (accounts.mfa reads its own `time`).
"""

from __future__ import annotations

from types import SimpleNamespace

import pyotp
import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts import mfa
from accounts.models import RecoveryCode, SecurityLogEntry, TotpDevice, User
from accounts.services import user_sign_out_everywhere
from conftest import PASSWORD

T0 = 1_800_000_000.0  # a step boundary: 1_800_000_000 / 30 is whole


@pytest.fixture
def clock(monkeypatch):  # type: ignore[no-untyped-def]
    """The time accounts.mfa sees, in seconds; tests move `clock.now`."""
    state = SimpleNamespace(now=T0 + 5)
    monkeypatch.setattr(mfa, "time", SimpleNamespace(time=lambda: state.now))
    return state


def code_at(secret: str, when: float) -> str:
    return pyotp.TOTP(secret).at(when)


def enrol(client: APIClient, clock: SimpleNamespace) -> tuple[str, list[str]]:
    """Turn two-factor on through the API; return the secret and the recovery codes."""
    secret = client.post("/api/v1/auth/2fa/totp/").json()["secret"]
    response = client.post("/api/v1/auth/2fa/totp/confirm/", {"code": code_at(secret, clock.now)}, format="json")
    assert response.status_code == 200, response.content
    return secret, response.json()["recovery_codes"]


@pytest.fixture
def enrolled(alice, client_for, clock):  # type: ignore[no-untyped-def]
    """alice with two-factor on; the clock has moved one step on since the confirming code."""
    secret, codes = enrol(client_for(alice), clock)
    clock.now += 30
    return SimpleNamespace(user=alice, secret=secret, codes=codes)


def password_step(client: APIClient, username: str = "alice") -> dict[str, object]:
    response = client.post("/api/v1/auth/token/", {"username": username, "password": PASSWORD}, format="json")
    assert response.status_code == 401, response.content
    body: dict[str, object] = response.json()
    return body


def second_step(client: APIClient, mfa_token: object, code: str):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/auth/token/mfa/", {"mfa_token": mfa_token, "code": code}, format="json")


# --- Enrolment --------------------------------------------------------------------------


def test_enrolment_gives_a_secret_and_otpauth_url_that_is_not_active_until_confirmed(alice, client_for, anon, clock):
    response = client_for(alice).post("/api/v1/auth/2fa/totp/")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"secret", "otpauth_url"}
    assert body["otpauth_url"].startswith("otpauth://totp/Chat:alice?secret=" + body["secret"])
    login = anon.post("/api/v1/auth/token/", {"username": "alice", "password": PASSWORD}, format="json")
    assert login.status_code == 200


def test_confirming_with_the_current_code_turns_two_factor_on_and_shows_ten_hashed_recovery_codes(
    alice, client_for, clock
):
    client = client_for(alice)
    _secret, codes = enrol(client, clock)

    assert len(codes) == 10 == len(set(codes))
    stored = set(RecoveryCode.objects.filter(user=alice).values_list("code_hash", flat=True))
    assert len(stored) == 10 and not stored & set(codes)
    assert mfa.mfa_enabled(alice)
    assert client.get("/api/v1/auth/2fa/").json() == {
        "enabled": True,
        "methods": ["totp", "recovery"],
        "recovery_codes_left": 10,
    }
    assert SecurityLogEntry.objects.filter(user=alice, kind=SecurityLogEntry.Kind.TOTP_ENABLED).count() == 1


def test_confirming_with_a_wrong_code_leaves_two_factor_off(alice, client_for, clock):
    client = client_for(alice)
    secret = client.post("/api/v1/auth/2fa/totp/").json()["secret"]

    response = client.post("/api/v1/auth/2fa/totp/confirm/", {"code": code_at(secret, clock.now + 90)}, format="json")

    assert response.status_code == 400
    assert "code" in response.json()
    assert not mfa.mfa_enabled(alice)


def test_enrolling_again_while_on_is_a_conflict(enrolled, client_for):
    response = client_for(enrolled.user).post("/api/v1/auth/2fa/totp/")

    assert response.status_code == 409
    assert TotpDevice.objects.get(user=enrolled.user).secret == enrolled.secret


def test_two_factor_routes_need_a_signed_in_caller(anon, db):
    assert anon.post("/api/v1/auth/2fa/totp/").status_code == 401
    assert anon.get("/api/v1/auth/2fa/").status_code == 401


# --- Signing in over the API ------------------------------------------------------------


def test_password_alone_answers_mfa_required_with_an_mfa_token_and_no_tokens(enrolled, anon):
    body = password_step(anon)

    assert body["code"] == "mfa_required"
    assert body["methods"] == ["totp", "recovery"]
    assert isinstance(body["mfa_token"], str)
    assert "access" not in body and "refresh" not in body


def test_the_current_code_finishes_signing_in_with_working_tokens(enrolled, anon, clock):
    body = password_step(anon)

    response = second_step(anon, body["mfa_token"], code_at(enrolled.secret, clock.now))

    assert response.status_code == 200
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}")
    assert client.get("/api/v1/users/me/").json()["username"] == "alice"


@pytest.mark.parametrize("offset", [-30, 30], ids=["previous-step", "next-step"])
def test_a_code_one_step_off_is_accepted(enrolled, anon, clock, offset):
    clock.now += 60
    body = password_step(anon)

    response = second_step(anon, body["mfa_token"], code_at(enrolled.secret, clock.now + offset))

    assert response.status_code == 200


@pytest.mark.parametrize("offset", [-60, 60], ids=["two-steps-old", "two-steps-ahead"])
def test_a_code_two_steps_off_is_refused(enrolled, anon, clock, offset):
    clock.now += 90
    body = password_step(anon)

    response = second_step(anon, body["mfa_token"], code_at(enrolled.secret, clock.now + offset))

    assert response.status_code == 401
    assert "code" in response.json()


def test_a_code_used_once_is_refused_the_second_time(enrolled, anon, clock):
    code = code_at(enrolled.secret, clock.now)
    assert second_step(anon, password_step(anon)["mfa_token"], code).status_code == 200

    response = second_step(anon, password_step(anon)["mfa_token"], code)

    assert response.status_code == 401


def test_an_older_code_is_refused_after_a_newer_one_was_used(enrolled, anon, clock):
    clock.now += 30
    assert second_step(anon, password_step(anon)["mfa_token"], code_at(enrolled.secret, clock.now)).status_code == 200

    response = second_step(anon, password_step(anon)["mfa_token"], code_at(enrolled.secret, clock.now - 30))

    assert response.status_code == 401


def test_each_recovery_code_signs_in_once(enrolled, anon):
    code = enrolled.codes[3]
    first = second_step(anon, password_step(anon)["mfa_token"], code.upper().replace("-", " "))
    assert first.status_code == 200

    again = second_step(anon, password_step(anon)["mfa_token"], code)

    assert again.status_code == 401
    assert mfa.recovery_codes_left(enrolled.user) == 9
    assert SecurityLogEntry.objects.filter(user=enrolled.user, kind=SecurityLogEntry.Kind.RECOVERY_USED).count() == 1


def test_an_expired_mfa_token_is_refused_even_with_the_right_code(enrolled, anon, clock, settings):
    token = password_step(anon)["mfa_token"]
    clock.now += settings.MFA_TOKEN_SECONDS + 1

    response = second_step(anon, token, code_at(enrolled.secret, clock.now))

    assert response.status_code == 401
    assert "mfa_token" in response.json()


@pytest.mark.parametrize("token", ["", "forged", "x" * 600, 12], ids=["empty", "forged", "too-long", "number"])
def test_a_forged_or_malformed_mfa_token_is_refused(enrolled, anon, clock, token):
    response = second_step(anon, token, code_at(enrolled.secret, clock.now))

    assert response.status_code in (400, 401)
    assert not SecurityLogEntry.objects.filter(user=enrolled.user, kind=SecurityLogEntry.Kind.SIGN_IN).exists()


def test_an_mfa_token_from_before_signing_out_everywhere_is_refused(enrolled, anon, clock):
    token = password_step(anon)["mfa_token"]
    user_sign_out_everywhere(user=User.objects.get(pk=enrolled.user.pk))

    response = second_step(anon, token, code_at(enrolled.secret, clock.now))

    assert response.status_code == 401


def test_wrong_codes_are_rate_limited_per_account_and_right_ones_are_not_counted(enrolled, anon, clock):
    token = password_step(anon)["mfa_token"]
    for _ in range(5):
        assert second_step(anon, token, "000000").status_code == 401

    refused = second_step(anon, token, code_at(enrolled.secret, clock.now))

    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    # From another address too: the budget is the account's.
    elsewhere = APIClient(REMOTE_ADDR="127.0.0.9")
    assert second_step(elsewhere, token, code_at(enrolled.secret, clock.now)).status_code == 429
    assert SecurityLogEntry.objects.filter(user=enrolled.user, kind=SecurityLogEntry.Kind.MFA_FAILED).count() == 5


def test_right_codes_do_not_spend_the_budget(enrolled, anon, clock):
    for _ in range(7):
        clock.now += 30
        response = second_step(anon, password_step(anon)["mfa_token"], code_at(enrolled.secret, clock.now))
        assert response.status_code == 200


# --- Turning it off, new recovery codes -------------------------------------------------


def test_turning_two_factor_off_needs_a_current_code(enrolled, client_for, anon, clock):
    client = client_for(enrolled.user)

    wrong = client.delete("/api/v1/auth/2fa/", {"code": "123456"}, format="json")
    assert wrong.status_code == 401
    assert mfa.mfa_enabled(enrolled.user)

    right = client.delete("/api/v1/auth/2fa/", {"code": code_at(enrolled.secret, clock.now)}, format="json")
    assert right.status_code == 204
    assert not mfa.mfa_enabled(enrolled.user)
    assert not RecoveryCode.objects.filter(user=enrolled.user).exists()
    login = anon.post("/api/v1/auth/token/", {"username": "alice", "password": PASSWORD}, format="json")
    assert login.status_code == 200


def test_turning_off_without_a_code_is_a_field_error(enrolled, client_for):
    response = client_for(enrolled.user).delete("/api/v1/auth/2fa/", {}, format="json")

    assert response.status_code == 400
    assert mfa.mfa_enabled(enrolled.user)


def test_new_recovery_codes_replace_the_old_ones(enrolled, client_for, anon, clock):
    response = client_for(enrolled.user).post(
        "/api/v1/auth/2fa/recovery-codes/", {"code": code_at(enrolled.secret, clock.now)}, format="json"
    )

    assert response.status_code == 200
    fresh = response.json()["recovery_codes"]
    assert len(fresh) == 10 and not set(fresh) & set(enrolled.codes)
    assert second_step(anon, password_step(anon)["mfa_token"], enrolled.codes[0]).status_code == 401
    assert second_step(anon, password_step(anon)["mfa_token"], fresh[0]).status_code == 200


# --- The web login ----------------------------------------------------------------------


def web_password(client: Client) -> None:
    response = client.post("/login/", {"username": "alice", "password": PASSWORD, "next": "/profile/"})
    assert response.status_code == 302
    assert response["Location"] == "/login/code/"


def test_web_login_asks_for_the_code_before_signing_in(enrolled, clock):
    client = Client()
    web_password(client)

    assert client.get("/profile/").status_code == 302  # not signed in yet
    page = client.get("/login/code/")
    assert page.status_code == 200
    assert b'autocomplete="one-time-code"' in page.content

    response = client.post("/login/code/", {"code": code_at(enrolled.secret, clock.now)})

    assert response.status_code == 302
    assert response["Location"] == "/profile/"
    assert client.get("/profile/").status_code == 200
    signed_in = SecurityLogEntry.objects.filter(user=enrolled.user, kind=SecurityLogEntry.Kind.SIGN_IN)
    assert signed_in.filter(via="web+totp").exists()


def test_web_login_refuses_a_wrong_code_and_stays_signed_out(enrolled, clock):
    client = Client()
    web_password(client)

    response = client.post("/login/code/", {"code": "000000"})

    assert response.status_code == 401
    assert b"wrong, already used or expired" in response.content
    assert client.get("/profile/").status_code == 302


def test_web_login_takes_a_recovery_code_once(enrolled, clock):
    client = Client()
    web_password(client)
    assert client.post("/login/code/", {"code": enrolled.codes[0]}).status_code == 302

    again = Client()
    web_password(again)
    assert again.post("/login/code/", {"code": enrolled.codes[0]}).status_code == 401


def test_web_login_code_page_after_the_ticket_expired_sends_back_to_the_password(enrolled, clock, settings):
    client = Client()
    web_password(client)
    clock.now += settings.MFA_TOKEN_SECONDS + 1

    response = client.post("/login/code/", {"code": code_at(enrolled.secret, clock.now)})

    assert response.status_code == 302
    assert response["Location"] == "/login/"
    assert client.get("/profile/").status_code == 302


def test_web_login_code_page_without_a_password_first_sends_to_the_login(db):
    response = Client().get("/login/code/")

    assert response.status_code == 302
    assert response["Location"] == "/login/"


def test_web_wrong_codes_share_the_accounts_budget_with_the_api(enrolled, anon, clock):
    token = password_step(anon)["mfa_token"]
    for _ in range(5):
        second_step(anon, token, "000000")
    client = Client()
    web_password(client)

    response = client.post("/login/code/", {"code": code_at(enrolled.secret, clock.now)})

    assert response.status_code == 429
    assert b"Too many attempts" in response.content


# --- Setting it up in the web UI --------------------------------------------------------


def test_web_enrolment_shows_a_qr_code_then_the_recovery_codes_once(alice, clock):
    client = Client()
    client.force_login(alice)
    assert b"Set up an authenticator app" in client.get("/profile/two-factor/").content

    client.post("/profile/two-factor/", {"form": "begin"})
    page = client.get("/profile/two-factor/")
    assert b"<svg" in page.content
    secret = TotpDevice.objects.get(user=alice).secret
    assert secret.encode() in page.content

    shown = client.post("/profile/two-factor/", {"form": "confirm", "code": code_at(secret, clock.now)})

    assert shown.status_code == 200
    assert shown.content.count(b"<li><code>") == 10
    assert mfa.mfa_enabled(alice)
    assert b"unused recovery codes" in client.get("/profile/two-factor/").content


def test_web_turning_off_with_a_wrong_code_keeps_two_factor_on(enrolled, clock):
    client = Client()
    client.force_login(enrolled.user)

    response = client.post("/profile/two-factor/", {"form": "disable", "code": "999999"})

    assert response.status_code == 401
    assert mfa.mfa_enabled(enrolled.user)
    client.post("/profile/two-factor/", {"form": "disable", "code": code_at(enrolled.secret, clock.now)})
    assert not mfa.mfa_enabled(enrolled.user)
