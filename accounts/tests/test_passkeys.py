"""Passkeys: register several, name and remove them, sign in with one as the second factor or alone.

A software authenticator (softauthn) answers with real keys and signatures;
the server's checks (challenge, origin, RP ID, signature, counter) run on them.
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts import mfa
from accounts.models import Passkey, SecurityLogEntry
from accounts.tests.softauthn import SoftAuthenticator
from conftest import PASSWORD

pytestmark = pytest.mark.django_db

API = "/api/v1/auth/webauthn/"


def register(client: APIClient, authenticator: SoftAuthenticator, name: str = "Laptop", **answer: object):  # type: ignore[no-untyped-def]
    options = client.post(f"{API}register/options/").json()
    credential = authenticator.create(options, **answer)  # type: ignore[arg-type]
    return client.post(f"{API}register/verify/", {"credential": credential, "name": name}, format="json")


@pytest.fixture
def authenticator() -> SoftAuthenticator:
    return SoftAuthenticator()


@pytest.fixture
def alice_client(alice, client_for):  # type: ignore[no-untyped-def]
    return client_for(alice)


@pytest.fixture
def with_passkey(alice, alice_client, authenticator):  # type: ignore[no-untyped-def]
    response = register(alice_client, authenticator)
    assert response.status_code == 201, response.content
    return response.json()


def password_step(client: APIClient) -> str:
    response = client.post("/api/v1/auth/token/", {"username": "alice", "password": PASSWORD}, format="json")
    assert response.status_code == 401
    assert response.json()["code"] == "mfa_required"
    token: str = response.json()["mfa_token"]
    return token


def login_options(client: APIClient, mfa_token: str | None = None) -> dict[str, object]:
    body = {"mfa_token": mfa_token} if mfa_token else {}
    response = client.post(f"{API}login/options/", body, format="json")
    assert response.status_code == 200, response.content
    options: dict[str, object] = response.json()
    return options


def login_verify(client: APIClient, credential: dict[str, object], mfa_token: str | None = None):  # type: ignore[no-untyped-def]
    body: dict[str, object] = {"credential": credential}
    if mfa_token:
        body["mfa_token"] = mfa_token
    return client.post(f"{API}login/verify/", body, format="json")


# --- Registering, naming, removing ------------------------------------------------------


def test_registering_a_first_passkey_turns_two_factor_on_and_gives_recovery_codes(alice, with_passkey):
    assert with_passkey["passkey"]["name"] == "Laptop"
    assert len(with_passkey["recovery_codes"]) == 10
    assert mfa.mfa_enabled(alice)
    assert mfa.mfa_methods(alice) == ["recovery", "webauthn"]
    assert SecurityLogEntry.objects.filter(user=alice, kind=SecurityLogEntry.Kind.PASSKEY_ADDED).exists()


def test_several_passkeys_are_listed_by_name_and_renamed(alice_client, with_passkey, authenticator):
    second = register(alice_client, authenticator, name="Phone")
    assert second.status_code == 201
    assert second.json()["recovery_codes"] == []

    passkey_id = second.json()["passkey"]["id"]
    renamed = alice_client.patch(f"{API}passkeys/{passkey_id}/", {"name": "  Work phone "}, format="json")

    assert renamed.status_code == 200
    listed = alice_client.get(f"{API}passkeys/").json()["results"]
    assert [key["name"] for key in listed] == ["Laptop", "Work phone"]


def test_removing_one_of_several_passkeys_needs_no_code(alice_client, with_passkey, authenticator):
    register(alice_client, authenticator, name="Phone")

    response = alice_client.delete(f"{API}passkeys/{with_passkey['passkey']['id']}/", {}, format="json")

    assert response.status_code == 204
    assert list(Passkey.objects.values_list("name", flat=True)) == ["Phone"]


def test_removing_the_last_second_factor_takes_a_recovery_code(alice, alice_client, with_passkey):
    url = f"{API}passkeys/{with_passkey['passkey']['id']}/"

    assert alice_client.delete(url, {}, format="json").status_code == 401
    assert alice_client.delete(url, {"code": with_passkey["recovery_codes"][0]}, format="json").status_code == 204

    assert not mfa.mfa_enabled(alice)
    assert mfa.recovery_codes_left(alice) == 0


def test_someone_elses_passkey_cannot_be_renamed_or_removed(with_passkey, bob, client_for):
    bobs = client_for(bob)
    url = f"{API}passkeys/{with_passkey['passkey']['id']}/"

    assert bobs.patch(url, {"name": "mine"}, format="json").status_code == 404
    assert bobs.delete(url, {}, format="json").status_code == 404


def test_registration_answered_for_another_origin_is_refused_and_keeps_nothing(alice_client, authenticator):
    response = register(alice_client, authenticator, origin="https://evil.example")

    assert response.status_code == 400
    assert "credential" in response.json()
    assert not Passkey.objects.exists()


def test_registration_answered_for_another_rp_id_is_refused(alice_client, authenticator):
    assert register(alice_client, authenticator, rp_id="evil.example").status_code == 400
    assert not Passkey.objects.exists()


def test_a_registration_challenge_works_once(alice_client, authenticator):
    options = alice_client.post(f"{API}register/options/").json()
    credential = authenticator.create(options)
    first = alice_client.post(f"{API}register/verify/", {"credential": credential, "name": "A"}, format="json")
    again = alice_client.post(f"{API}register/verify/", {"credential": credential, "name": "B"}, format="json")

    assert (first.status_code, again.status_code) == (201, 400)


def test_a_registration_needs_a_name(alice_client, authenticator):
    assert register(alice_client, authenticator, name="   ").status_code == 400


# --- Signing in -------------------------------------------------------------------------


def test_a_passkey_is_the_second_factor_after_the_password(alice, with_passkey, authenticator, anon):
    token = password_step(anon)
    options = login_options(anon, token)
    assert len(options["allowCredentials"]) == 1  # type: ignore[arg-type]

    response = login_verify(anon, authenticator.get(options), token)

    assert response.status_code == 200
    assert set(response.json()) == {"access", "refresh"}
    passkey = Passkey.objects.get()
    assert passkey.sign_count == 1 and passkey.last_used_at is not None


def test_a_passkey_signs_in_without_a_password(alice, with_passkey, authenticator, anon):
    options = login_options(anon)
    assert options["allowCredentials"] == []
    assert options["userVerification"] == "required"

    response = login_verify(anon, authenticator.get(options))

    assert response.status_code == 200
    me = APIClient()
    me.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}")
    assert me.get("/api/v1/users/me/").json()["username"] == "alice"


def test_password_less_sign_in_needs_the_user_verified(with_passkey, authenticator, anon):
    authenticator.user_verified = False

    assert login_verify(anon, authenticator.get(login_options(anon))).status_code == 400


def test_a_made_up_challenge_is_refused(with_passkey, authenticator, anon):
    options = login_options(anon)

    response = login_verify(anon, authenticator.get(options, challenge="bm90LWEtY2hhbGxlbmdl"))

    assert response.status_code == 400


@pytest.mark.parametrize(
    "answer", [{"origin": "https://evil.example"}, {"rp_id": "evil.example"}], ids=["origin", "rp-id"]
)
def test_an_answer_for_another_site_is_refused(with_passkey, authenticator, anon, answer):
    response = login_verify(anon, authenticator.get(login_options(anon), **answer))

    assert response.status_code == 400
    assert Passkey.objects.get().last_used_at is None


def test_a_sign_in_challenge_works_once(with_passkey, authenticator, anon):
    credential = authenticator.get(login_options(anon))
    assert login_verify(anon, credential).status_code == 200

    assert login_verify(anon, credential).status_code == 400


def test_a_cloned_key_whose_counter_went_back_is_refused(with_passkey, authenticator, anon):
    assert login_verify(anon, authenticator.get(login_options(anon))).status_code == 200
    authenticator.keys[0].sign_count = 0  # a copy made before that sign-in

    assert login_verify(anon, authenticator.get(login_options(anon))).status_code == 400


def test_as_second_factor_only_the_accounts_own_passkey_counts(alice, bob, with_passkey, client_for, anon):
    bobs_authenticator = SoftAuthenticator()
    register(client_for(bob), bobs_authenticator)
    token = password_step(anon)
    options = login_options(anon, token)
    options["allowCredentials"] = []  # bob's device answers anyway

    response = login_verify(anon, bobs_authenticator.get(options), token)

    assert response.status_code == 400


def test_a_password_less_challenge_cannot_finish_a_second_factor_sign_in(with_passkey, authenticator, anon):
    token = password_step(anon)
    credential = authenticator.get(login_options(anon))

    assert login_verify(anon, credential, token).status_code == 400


def test_an_expired_mfa_token_is_refused_for_passkeys_too(with_passkey, anon):
    assert anon.post(f"{API}login/options/", {"mfa_token": "forged"}, format="json").status_code == 401


def test_garbage_instead_of_a_credential_is_a_400(with_passkey, anon):
    for credential in ({}, {"response": {"clientDataJSON": "!!"}}, [1, 2], "text"):
        assert login_verify(anon, credential).status_code == 400  # type: ignore[arg-type]


# --- The web login ----------------------------------------------------------------------


def web_passkey(client, credential, *, second_factor: bool = False, next_page: str = ""):  # type: ignore[no-untyped-def]
    url = "/login/passkey/" + (f"?next={next_page}" if next_page else "")
    return client.post(url, {"credential": credential, "second_factor": second_factor}, content_type="application/json")


def test_the_web_login_signs_in_with_a_passkey_alone(alice, with_passkey, authenticator, anon):
    from django.test import Client

    browser = Client()
    options = login_options(anon)

    response = web_passkey(browser, authenticator.get(options), next_page="/profile/")

    assert response.status_code == 200
    assert response.json() == {"next": "/profile/"}
    assert browser.get("/profile/").status_code == 200
    assert SecurityLogEntry.objects.filter(user=alice, via="web+webauthn").exists()


def test_the_web_login_takes_a_passkey_as_the_second_factor(alice, with_passkey, authenticator, anon):
    from django.test import Client

    browser = Client()
    browser.post("/login/", {"username": "alice", "password": PASSWORD, "next": "/profile/"})
    page = browser.get("/login/code/")
    assert b'data-passkey="second-factor"' in page.content
    token = page.context["mfa_token"]

    response = web_passkey(browser, authenticator.get(login_options(anon, token)), second_factor=True)

    assert response.json() == {"next": "/profile/"}
    assert browser.get("/profile/").status_code == 200


def test_the_web_second_factor_needs_the_password_first(with_passkey, authenticator, anon):
    from django.test import Client

    browser = Client()
    response = web_passkey(browser, authenticator.get(login_options(anon)), second_factor=True)

    assert response.status_code == 400
    assert browser.get("/profile/").status_code == 302


def test_the_web_login_refuses_a_bad_answer_with_a_json_error(with_passkey, authenticator, anon):
    from django.test import Client

    browser = Client()
    response = web_passkey(browser, authenticator.get(login_options(anon), origin="https://evil.example"))

    assert response.status_code == 400
    assert "detail" in response.json()
    assert browser.get("/profile/").status_code == 302


def test_the_two_factor_page_lists_renames_and_removes_passkeys(alice, alice_client, with_passkey, authenticator):
    from django.test import Client

    register(alice_client, authenticator, name="Phone")
    browser = Client()
    browser.force_login(alice)
    page = browser.get("/profile/two-factor/")
    assert b"Rename passkey Laptop" in page.content and b"Remove passkey Phone" in page.content

    first, second = Passkey.objects.order_by("id")
    browser.post("/profile/two-factor/", {"form": "passkey-rename", "passkey": first.pk, "name": "Desk"})
    browser.post("/profile/two-factor/", {"form": "passkey-remove", "passkey": second.pk})

    assert list(Passkey.objects.values_list("name", flat=True)) == ["Desk"]
