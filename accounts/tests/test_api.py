"""The accounts REST routes of docs/api.md: registration, tokens, logout, profile and user lookup."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.models import User
from accounts.services import tokens_for, user_deactivate, user_update_profile
from conftest import PASSWORD

STRONG_PASSWORD = "quiet otter paints 7 lanterns"


def register(client: APIClient, **fields: object):  # type: ignore[no-untyped-def]
    body = {"username": "dave", "email": "dave@example.com", "password": STRONG_PASSWORD, **fields}
    return client.post("/api/v1/auth/register/", body, format="json")


# --- Register ---------------------------------------------------------------------------


def test_register_creates_the_user_and_returns_user_and_tokens(anon, db):
    response = register(anon, display_name="Dave D")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"user", "access", "refresh"}
    user = User.objects.get(username="dave")
    assert body["user"] == {"id": user.pk, "username": "dave", "display_name": "Dave D", "email": "dave@example.com"}
    assert user.check_password(STRONG_PASSWORD)


def test_registered_access_token_authenticates_the_new_user(anon, db):
    access = register(anon).json()["access"]

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    response = client.get("/api/v1/users/me/")

    assert response.status_code == 200
    assert response.json()["username"] == "dave"


def test_registered_refresh_token_can_be_refreshed(anon, db):
    refresh = register(anon).json()["refresh"]

    response = anon.post("/api/v1/auth/token/refresh/", {"refresh": refresh}, format="json")

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [
        pytest.param({"username": "ALICE"}, "username", id="username-taken-other-case"),
        pytest.param({"username": "alice"}, "username", id="username-taken"),
        pytest.param({"email": "Alice@Example.COM"}, "email", id="email-taken-other-case"),
        pytest.param({"password": "password"}, "password", id="common-password"),
        pytest.param({"password": "short"}, "password", id="short-password"),
        pytest.param({"password": " " * 20}, "password", id="password-of-spaces"),
        pytest.param({"password": "\t \u00a0\u3000\u2003" * 3}, "password", id="password-of-whitespace"),
        pytest.param({"password": "\u200b" * 12}, "password", id="password-of-zero-width-spaces"),
        pytest.param({"password": "12345678901234"}, "password", id="numeric-password"),
        pytest.param({"password": "dave@example.com"}, "password", id="password-like-email"),
        pytest.param({"email": "not-an-email"}, "email", id="bad-email"),
        pytest.param({"username": "has space"}, "username", id="bad-username"),
        pytest.param({"username": ".dave"}, "username", id="username-starts-with-dot"),
        pytest.param({"username": "d" * 31}, "username", id="username-too-long"),
        pytest.param({"display_name": "x" * 65}, "display_name", id="display-name-too-long"),
        pytest.param({"is_staff": True}, "is_staff", id="unknown-field"),
        pytest.param({"username": ["dave"]}, "username", id="username-list"),
        pytest.param({"email": {"address": "dave@example.com"}}, "email", id="email-object"),
        pytest.param({"password": True}, "password", id="password-bool"),
        pytest.param({"username": None}, "username", id="username-null"),
    ],
)
def test_register_rejects_bad_input_with_field_errors_and_creates_nothing(anon, alice, fields, bad_field):
    users_before = User.objects.count()

    response = register(anon, **fields)

    assert response.status_code == 400
    assert bad_field in response.json()
    assert isinstance(response.json()[bad_field], list)
    assert User.objects.count() == users_before


def test_a_password_of_only_spaces_is_refused_with_a_reason(anon, db):
    response = register(anon, password=" " * 20)

    assert response.status_code == 400
    assert response.json() == {"password": ["A password needs at least one visible character."]}


def test_a_password_with_spaces_around_visible_characters_is_taken_as_sent(anon, db):
    assert register(anon, password="  " + STRONG_PASSWORD + "  ").status_code == 201
    assert User.objects.get(username="dave").check_password("  " + STRONG_PASSWORD + "  ")


def test_register_reports_every_missing_field(anon, db):
    response = anon.post("/api/v1/auth/register/", {}, format="json")

    assert response.status_code == 400
    assert {"username", "email", "password"} <= set(response.json())
    assert not User.objects.exists()


def test_register_reports_several_problems_at_once(anon, alice):
    response = register(anon, username="Alice", email="nope", password="password")

    assert response.status_code == 400
    assert {"username", "email", "password"} <= set(response.json())


def test_register_rejects_a_body_that_is_not_an_object(anon, db):
    response = anon.post("/api/v1/auth/register/", ["dave"], format="json")

    assert response.status_code == 400
    assert not User.objects.exists()


def test_register_needs_no_credentials_even_with_a_bad_token(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")

    assert register(client).status_code == 201


# --- Tokens -------------------------------------------------------------------------------


def test_token_obtain_returns_an_access_and_refresh_pair(anon, alice):
    response = anon.post("/api/v1/auth/token/", {"username": "alice", "password": PASSWORD}, format="json")

    assert response.status_code == 200
    assert set(response.json()) == {"access", "refresh"}


def test_token_obtain_accepts_the_username_in_any_case(anon, alice):
    response = anon.post("/api/v1/auth/token/", {"username": "ALICE", "password": PASSWORD}, format="json")

    assert response.status_code == 200


def test_wrong_password_and_unknown_username_get_the_same_401(anon, alice):
    wrong_password = anon.post("/api/v1/auth/token/", {"username": "alice", "password": "nope"}, format="json")
    unknown_user = anon.post("/api/v1/auth/token/", {"username": "nobody", "password": PASSWORD}, format="json")

    assert wrong_password.status_code == 401
    assert unknown_user.status_code == 401
    assert wrong_password.json() == unknown_user.json()


def test_inactive_user_cannot_obtain_a_token(anon, make_user):
    make_user("gone", is_active=False)

    response = anon.post("/api/v1/auth/token/", {"username": "gone", "password": PASSWORD}, format="json")

    assert response.status_code == 401


def test_token_obtain_without_fields_is_400(anon, db):
    response = anon.post("/api/v1/auth/token/", {}, format="json")

    assert response.status_code == 400
    assert {"username", "password"} <= set(response.json())


def test_refresh_rotates_and_the_used_refresh_token_is_dead(anon, alice):
    old = tokens_for(alice)["refresh"]

    first = anon.post("/api/v1/auth/token/refresh/", {"refresh": old}, format="json")
    again = anon.post("/api/v1/auth/token/refresh/", {"refresh": old}, format="json")

    assert first.status_code == 200
    assert set(first.json()) == {"access", "refresh"}
    assert first.json()["refresh"] != old
    assert again.status_code == 401


def test_rotated_refresh_token_works_once(anon, alice):
    rotated = anon.post("/api/v1/auth/token/refresh/", {"refresh": tokens_for(alice)["refresh"]}, format="json")

    response = anon.post("/api/v1/auth/token/refresh/", {"refresh": rotated.json()["refresh"]}, format="json")

    assert response.status_code == 200


def test_refresh_with_garbage_is_401(anon, db):
    response = anon.post("/api/v1/auth/token/refresh/", {"refresh": "garbage"}, format="json")

    assert response.status_code == 401


def test_refresh_with_an_access_token_is_401(anon, alice):
    response = anon.post("/api/v1/auth/token/refresh/", {"refresh": tokens_for(alice)["access"]}, format="json")

    assert response.status_code == 401


# --- Logout -------------------------------------------------------------------------------


def test_logout_is_205_and_the_refresh_token_is_dead_afterwards(client_for, anon, alice):
    refresh = tokens_for(alice)["refresh"]

    response = client_for(alice).post("/api/v1/auth/logout/", {"refresh": refresh}, format="json")
    reuse = anon.post("/api/v1/auth/token/refresh/", {"refresh": refresh}, format="json")

    assert response.status_code == 205
    assert reuse.status_code == 401


def test_logout_twice_with_the_same_token_is_400(client_for, alice):
    refresh = tokens_for(alice)["refresh"]
    client = client_for(alice)
    client.post("/api/v1/auth/logout/", {"refresh": refresh}, format="json")

    response = client.post("/api/v1/auth/logout/", {"refresh": refresh}, format="json")

    assert response.status_code == 400
    assert "refresh" in response.json()


def test_logout_with_another_users_token_is_400_and_leaves_it_alive(client_for, anon, alice, bob):
    bobs_refresh = tokens_for(bob)["refresh"]

    response = client_for(alice).post("/api/v1/auth/logout/", {"refresh": bobs_refresh}, format="json")
    still_alive = anon.post("/api/v1/auth/token/refresh/", {"refresh": bobs_refresh}, format="json")

    assert response.status_code == 400
    assert "refresh" in response.json()
    assert still_alive.status_code == 200


@pytest.mark.parametrize(
    "body", [{"refresh": "garbage"}, {}, {"refresh": "x", "extra": 1}], ids=["garbage", "missing", "unknown-field"]
)
def test_logout_with_a_bad_body_is_400(client_for, alice, body):
    response = client_for(alice).post("/api/v1/auth/logout/", body, format="json")

    assert response.status_code == 400


# --- users/me -----------------------------------------------------------------------------


def test_me_returns_the_caller_with_email(client_for, bob):
    response = client_for(bob).get("/api/v1/users/me/")

    assert response.status_code == 200
    assert response.json() == {"id": bob.pk, "username": "bob", "display_name": "Bob", "email": "bob@example.com"}


def test_me_patch_changes_the_display_name(client_for, bob):
    response = client_for(bob).patch("/api/v1/users/me/", {"display_name": "  Robert  "}, format="json")

    assert response.status_code == 200
    assert response.json()["display_name"] == "Robert"
    bob.refresh_from_db()
    assert bob.display_name == "Robert"


def test_me_patch_with_an_empty_display_name_falls_back_to_the_username(client_for, bob):
    response = client_for(bob).patch("/api/v1/users/me/", {"display_name": ""}, format="json")

    assert response.status_code == 200
    assert response.json()["display_name"] == "bob"


@pytest.mark.parametrize(
    ("body", "bad_field"),
    [
        pytest.param({"display_name": "x" * 65}, "display_name", id="too-long"),
        pytest.param({"display_name": ["Bob"]}, "display_name", id="wrong-type"),
        pytest.param({"username": "robert"}, "username", id="unknown-field"),
        pytest.param({"email": "new@example.com"}, "email", id="email-not-editable"),
        pytest.param({}, "display_name", id="missing"),
    ],
)
def test_me_patch_rejects_bad_input_and_changes_nothing(client_for, bob, body, bad_field):
    response = client_for(bob).patch("/api/v1/users/me/", body, format="json")

    assert response.status_code == 400
    assert bad_field in response.json()
    bob.refresh_from_db()
    assert (bob.username, bob.display_name, bob.email) == ("bob", "Bob", "bob@example.com")


# --- users/ and users/{id}/ -----------------------------------------------------------------


def test_user_search_matches_username_and_display_name(client_for, make_user, alice):
    make_user("zed", display_name="Ann Other")
    make_user("annika")
    make_user("bert")

    response = client_for(alice).get("/api/v1/users/", {"q": "ann"})

    assert response.status_code == 200
    assert [user["username"] for user in response.json()["results"]] == ["zed", "annika"]
    assert response.json()["has_more"] is False


def test_user_search_results_have_the_public_user_shape(client_for, alice, bob):
    response = client_for(alice).get("/api/v1/users/", {"q": "bob"})

    assert response.json()["results"] == [{"id": bob.pk, "username": "bob", "display_name": "Bob"}]


def test_user_search_leaves_out_inactive_users(client_for, make_user, alice):
    make_user("annie", is_active=False)

    response = client_for(alice).get("/api/v1/users/", {"q": "annie"})

    assert response.json()["results"] == []


def test_user_search_pages_with_after_and_limit(client_for, make_user, alice):
    people = [make_user(f"page{n}") for n in range(5)]
    client = client_for(alice)

    first = client.get("/api/v1/users/", {"q": "page", "limit": 2}).json()
    second = client.get("/api/v1/users/", {"q": "page", "limit": 2, "after": first["results"][-1]["id"]}).json()
    last = client.get("/api/v1/users/", {"q": "page", "limit": 2, "after": second["results"][-1]["id"]}).json()

    assert [user["id"] for user in first["results"]] == [people[0].pk, people[1].pk]
    assert first["has_more"] is True
    assert [user["id"] for user in second["results"]] == [people[2].pk, people[3].pk]
    assert second["has_more"] is True
    assert [user["id"] for user in last["results"]] == [people[4].pk]
    assert last["has_more"] is False


def test_user_search_without_a_query_lists_everyone(client_for, alice, bob, carol):
    response = client_for(alice).get("/api/v1/users/")

    assert [user["username"] for user in response.json()["results"]] == ["alice", "bob", "carol"]


@pytest.mark.parametrize(
    ("params", "bad_field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"after": "x"}, "after"),
        ({"after": "-5"}, "after"),
        ({"after": 2**63}, "after"),
        ({"after": 10**30}, "after"),
        # Only ASCII digits: int() reads these, str.isdigit() accepts some it cannot read.
        ({"limit": "²"}, "limit"),
        ({"limit": "٥"}, "limit"),
        ({"limit": "1_0"}, "limit"),
        ({"after": " 5"}, "after"),
        ({"after": "9" * 5000}, "after"),
        ({"q": "x" * 201}, "q"),
        ({"q": "a\x00b"}, "q"),
    ],
)
def test_user_search_rejects_bad_parameters(client_for, alice, params, bad_field):
    response = client_for(alice).get("/api/v1/users/", params)

    assert response.status_code == 400
    assert bad_field in response.json()


def test_user_search_accepts_the_largest_limit(client_for, alice):
    response = client_for(alice).get("/api/v1/users/", {"limit": 200})

    assert response.status_code == 200


def test_user_search_after_beyond_every_id_is_an_empty_page(client_for, alice):
    response = client_for(alice).get("/api/v1/users/", {"after": 2**63 - 1})

    assert response.status_code == 200
    assert response.json() == {"results": [], "has_more": False}


def test_user_detail_returns_the_public_user_shape(client_for, alice, bob):
    user_update_profile(user=bob, display_name="Bobby")

    response = client_for(alice).get(f"/api/v1/users/{bob.pk}/")

    assert response.status_code == 200
    assert response.json() == {"id": bob.pk, "username": "bob", "display_name": "Bobby", "is_active": True}


def test_user_detail_of_a_deactivated_account_says_so(client_for, alice, bob):
    user_deactivate(user=bob)

    response = client_for(alice).get(f"/api/v1/users/{bob.pk}/")

    assert response.status_code == 200
    assert response.json() == {"id": bob.pk, "username": "bob", "display_name": "Bob", "is_active": False}


@pytest.mark.parametrize("user_id", [999999, 10**30])
def test_user_detail_of_an_unknown_id_is_a_json_404(client_for, alice, user_id):
    response = client_for(alice).get(f"/api/v1/users/{user_id}/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert "detail" in response.json()


def test_unknown_api_path_is_a_json_404(client_for, alice):
    response = client_for(alice).get("/api/v1/no-such-thing/")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


# --- Credentials --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/v1/auth/logout/"),
        ("get", "/api/v1/users/me/"),
        ("patch", "/api/v1/users/me/"),
        ("get", "/api/v1/users/"),
        ("get", "/api/v1/users/1/"),
    ],
)
def test_every_user_route_without_credentials_is_401(anon, alice, method, path):
    response = getattr(anon, method)(path, {}, format="json")

    assert response.status_code == 401
    assert "detail" in response.json()


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/api/v1/users/me/"), ("patch", "/api/v1/users/me/"), ("get", "/api/v1/users/")],
)
def test_a_garbage_or_refresh_bearer_token_is_401(alice, method, path):
    for token in ("garbage", tokens_for(alice)["refresh"]):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

        response = getattr(client, method)(path, {"display_name": "x"}, format="json")

        assert response.status_code == 401


def test_an_inactive_users_access_token_is_401(client_for, alice):
    client = client_for(alice)
    alice.is_active = False
    alice.save(update_fields=["is_active"])

    assert client.get("/api/v1/users/me/").status_code == 401


@pytest.mark.parametrize("path", ["/api/v1/auth/register/", "/api/v1/auth/token/", "/api/v1/auth/token/refresh/"])
def test_register_token_and_refresh_need_no_credentials(anon, db, path):
    response = anon.post(path, {}, format="json")

    assert response.status_code == 400


# --- Session authentication and CSRF ------------------------------------------------------


CSRF_TOKEN = "a" * 32


def test_session_cookie_authenticates(alice):
    client = APIClient()
    client.force_login(alice)

    response = client.get("/api/v1/users/me/")

    assert response.status_code == 200
    assert response.json()["username"] == "alice"


def test_session_auth_allows_safe_methods_without_a_csrf_token(alice):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(alice)

    assert client.get("/api/v1/users/me/").status_code == 200


def test_session_auth_refuses_unsafe_methods_without_a_csrf_token(alice):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(alice)

    response = client.patch("/api/v1/users/me/", {"display_name": "Hacked"}, format="json")

    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    alice.refresh_from_db()
    assert alice.display_name == "Alice"


def test_session_auth_refuses_a_csrf_header_that_does_not_match_the_cookie(alice):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(alice)
    client.cookies["csrftoken"] = CSRF_TOKEN

    response = client.patch("/api/v1/users/me/", {"display_name": "Hacked"}, format="json", HTTP_X_CSRFTOKEN="b" * 32)

    assert response.status_code == 403


def test_session_auth_accepts_unsafe_methods_with_a_csrf_token(alice):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(alice)
    client.cookies["csrftoken"] = CSRF_TOKEN

    response = client.patch("/api/v1/users/me/", {"display_name": "Alicia"}, format="json", HTTP_X_CSRFTOKEN=CSRF_TOKEN)

    assert response.status_code == 200
    assert response.json()["display_name"] == "Alicia"


def test_bearer_auth_needs_no_csrf_token(alice):
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_for(alice)['access']}")

    response = client.patch("/api/v1/users/me/", {"display_name": "Alicia"}, format="json")

    assert response.status_code == 200
