"""Tokens and accounts (issue 5, item 6): short access tokens, rotating refresh tokens with a blacklist,
revocation on logout and password change, and log-in errors that do not reveal whether an account exists.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.hashers import Argon2PasswordHasher
from django.test import Client
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.models import User
from accounts.services import tokens_for, user_set_password
from conftest import PASSWORD

pytestmark = pytest.mark.django_db

ARGON2 = "django.contrib.auth.hashers.Argon2PasswordHasher"


def login(username: str, password: str) -> Any:
    return APIClient().post("/api/v1/auth/token/", {"username": username, "password": password}, format="json")


def refresh(token: str) -> Any:
    return APIClient().post("/api/v1/auth/token/refresh/", {"refresh": token}, format="json")


def test_access_tokens_are_short_lived(bob: Any, settings: Any) -> None:
    assert settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"] <= timedelta(minutes=15)
    access = AccessToken(tokens_for(bob)["access"])  # type: ignore[arg-type]
    assert access["exp"] - access["iat"] <= 15 * 60


def test_a_refresh_token_works_once_then_is_dead(bob: Any) -> None:
    first = tokens_for(bob)["refresh"]
    response = refresh(first)
    assert response.status_code == 200
    assert response.json()["refresh"] != first
    assert refresh(response.json()["refresh"]).status_code == 200
    assert refresh(first).status_code == 401


def test_logout_kills_the_refresh_token(bob: Any, client_for: Any) -> None:
    tokens = tokens_for(bob)
    assert (
        client_for(bob).post("/api/v1/auth/logout/", {"refresh": tokens["refresh"]}, format="json").status_code == 205
    )
    assert refresh(tokens["refresh"]).status_code == 401


def test_logout_everywhere_kills_every_refresh_token_of_the_user(bob: Any, alice: Any, client_for: Any) -> None:
    laptop, phone, other = tokens_for(bob)["refresh"], tokens_for(bob)["refresh"], tokens_for(alice)["refresh"]
    response = client_for(bob).post("/api/v1/auth/logout/", {"refresh": laptop, "everywhere": True}, format="json")
    assert response.status_code == 205
    assert refresh(laptop).status_code == 401
    assert refresh(phone).status_code == 401
    assert refresh(other).status_code == 200  # someone else's sessions are untouched


def test_logout_refuses_someone_elses_refresh_token(bob: Any, alice: Any, client_for: Any) -> None:
    theirs = tokens_for(alice)["refresh"]
    response = client_for(bob).post("/api/v1/auth/logout/", {"refresh": theirs}, format="json")
    assert response.status_code == 400
    assert refresh(theirs).status_code == 200


def test_changing_the_password_revokes_every_refresh_token(bob: Any) -> None:
    tokens = [tokens_for(bob)["refresh"] for _ in range(3)]
    user_set_password(user=bob, password="a brand new passphrase 42")
    assert [refresh(token).status_code for token in tokens] == [401, 401, 401]
    assert login("bob", PASSWORD).status_code == 401
    assert login("bob", "a brand new passphrase 42").status_code == 200


def me(access: str) -> int:
    return APIClient(HTTP_AUTHORIZATION=f"Bearer {access}").get("/api/v1/users/me/").status_code


def logout(access: str, refresh: str, **extra: Any) -> int:
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client.post("/api/v1/auth/logout/", {"refresh": refresh, **extra}, format="json").status_code


def test_logout_stops_the_access_tokens_of_that_sign_in_at_once_and_no_others(bob: Any) -> None:
    signed_out, other = tokens_for(bob), tokens_for(bob)
    rotated = refresh(signed_out["refresh"]).json()
    assert logout(other["access"], rotated["refresh"]) == 205
    # Both access tokens of the sign-in, the first and the one its rotation made.
    assert [me(signed_out["access"]), me(rotated["access"])] == [401, 401]
    assert me(other["access"]) == 200
    assert refresh(other["refresh"]).status_code == 200


def test_sign_out_everywhere_stops_every_access_token_at_once(bob: Any, alice: Any) -> None:
    first, second, theirs = tokens_for(bob), tokens_for(bob), tokens_for(alice)
    assert logout(first["access"], first["refresh"], everywhere=True) == 205
    assert [me(first["access"]), me(second["access"])] == [401, 401]
    assert refresh(second["refresh"]).status_code == 401
    assert me(theirs["access"]) == 200
    # A new log-in works as before.
    assert me(login("bob", PASSWORD).json()["access"]) == 200


def test_a_password_change_stops_every_access_token_at_once(bob: Any) -> None:
    tokens = tokens_for(bob)
    user_set_password(user=bob, password="a brand new passphrase 42")
    assert me(tokens["access"]) == 401


def test_sign_out_everywhere_ends_every_browser_session(bob: Any) -> None:
    laptop, phone = Client(), Client()
    for browser in (laptop, phone):
        assert browser.login(username="bob", password=PASSWORD)
        assert browser.get("/profile/").status_code == 200
    tokens = tokens_for(bob)
    assert logout(tokens["access"], tokens["refresh"], everywhere=True) == 205
    for browser in (laptop, phone):
        assert browser.get("/profile/").status_code == 302


def test_a_refresh_token_presented_again_revokes_every_token_descended_from_its_log_in(bob: Any) -> None:
    stolen, other = tokens_for(bob), tokens_for(bob)
    first = refresh(stolen["refresh"]).json()
    second = refresh(first["refresh"]).json()
    # The thief (or the victim) presents the first, already rotated, refresh token.
    assert refresh(stolen["refresh"]).status_code == 401
    # Every token of that sign-in is dead, the newest included.
    assert refresh(second["refresh"]).status_code == 401
    assert [me(stolen["access"]), me(first["access"]), me(second["access"])] == [401, 401, 401]
    # The account's other sign-in is untouched.
    assert me(other["access"]) == 200
    assert refresh(other["refresh"]).status_code == 200


def test_of_two_refreshes_racing_with_one_token_only_one_gets_a_pair(bob: Any, monkeypatch: Any) -> None:
    tokens = tokens_for(bob)
    # Both requests get past the blacklist check before either rotates.
    monkeypatch.setattr(RefreshToken, "check_blacklist", lambda self: None)
    winner = refresh(tokens["refresh"])
    loser = refresh(tokens["refresh"])
    assert (winner.status_code, loser.status_code) == (200, 401)
    monkeypatch.undo()
    # Two parties held the token: the sign-in is revoked, the winner's pair too.
    assert refresh(winner.json()["refresh"]).status_code == 401
    assert me(winner.json()["access"]) == 401


def test_a_forged_or_expired_refresh_token_revokes_nothing(bob: Any) -> None:
    tokens = tokens_for(bob)
    forged = RefreshToken(tokens["refresh"])  # type: ignore[arg-type]
    expired = RefreshToken(tokens["refresh"])  # type: ignore[arg-type]
    expired.set_exp(lifetime=timedelta(seconds=-60))
    bad_signature = str(forged)[:-4] + ("AAAA" if not str(forged).endswith("AAAA") else "BBBB")
    assert refresh(bad_signature).status_code == 401
    assert refresh(str(expired)).status_code == 401
    assert me(tokens["access"]) == 200
    assert refresh(tokens["refresh"]).status_code == 200


def test_a_deactivated_account_cannot_refresh_or_log_in(bob: Any) -> None:
    token = tokens_for(bob)["refresh"]
    User.objects.filter(pk=bob.pk).update(is_active=False)
    assert refresh(token).status_code == 401
    assert login("bob", PASSWORD).status_code == 401


def test_a_refresh_token_of_a_deleted_account_is_a_401_not_a_crash(bob: Any) -> None:
    token = tokens_for(bob)["refresh"]
    User.objects.filter(pk=bob.pk).delete()
    response = refresh(token)
    assert response.status_code == 401


def test_login_errors_read_the_same_whether_or_not_the_account_exists(bob: Any, make_user: Any) -> None:
    make_user("sleeper", is_active=False)
    wrong_password = login("bob", "not the password")
    unknown_user = login("nobody_here", "not the password")
    inactive = login("sleeper", PASSWORD)
    assert wrong_password.status_code == unknown_user.status_code == inactive.status_code == 401
    assert wrong_password.json() == unknown_user.json() == inactive.json()


def test_an_unknown_username_still_costs_a_password_hash(db: None, settings: Any, monkeypatch: Any) -> None:
    # Django's ModelBackend hashes the given password even when no account matches.
    settings.PASSWORD_HASHERS = [ARGON2]
    calls: list[str] = []
    original = Argon2PasswordHasher.encode

    def counting(self: Argon2PasswordHasher, password: str, salt: str) -> str:
        calls.append(password)
        return original(self, password, salt)

    monkeypatch.setattr(Argon2PasswordHasher, "encode", counting)
    assert login("nobody_here", "guess").status_code == 401
    assert calls == ["guess"]


def test_new_passwords_are_hashed_with_argon2(db: None, settings: Any) -> None:
    settings.PASSWORD_HASHERS = [ARGON2, "django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    user = User.objects.create_user(username="hashed", email="hashed@example.com", password=PASSWORD)
    assert user.password.startswith("argon2$argon2id$")
