"""A burst gets 429 with Retry-After (issue 5, item 3): the auth routes per address and per username, the API per user.

The limits are on in every test (RATELIMIT_ENABLE defaults to on); the root
conftest gives each test fresh counters.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.services import tokens_for
from conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _frozen_rate_limit_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hold django-ratelimit's clock still: its fixed windows must not roll over in the middle of a burst."""
    import django_ratelimit.core

    monkeypatch.setattr(django_ratelimit.core, "time", SimpleNamespace(time=lambda: 1_800_000_000.0))


def _limit(settings: Any, action: str, kind: str) -> int:
    return int(settings.AUTH_RATE_LIMITS[action][kind].split("/")[0])


def _assert_throttled(response: Any) -> None:
    assert response.status_code == 429, response.content
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= 3600
    assert "detail" in response.json()


def test_rate_limits_are_on_by_default(settings: Any) -> None:
    assert settings.RATELIMIT_ENABLE is True


def test_guessing_one_password_gets_429_per_username_even_across_addresses(bob: Any, settings: Any) -> None:
    client = APIClient()
    limit = _limit(settings, "login", "username")
    for attempt in range(limit):
        # A different address each time: the per-username budget still runs out.
        response = client.post(
            "/api/v1/auth/token/",
            {"username": "BOB", "password": f"wrong-{attempt}"},
            format="json",
            REMOTE_ADDR=f"10.0.0.{attempt + 1}",
        )
        assert response.status_code == 401
    response = client.post(
        "/api/v1/auth/token/", {"username": "bob", "password": PASSWORD}, format="json", REMOTE_ADDR="10.0.1.1"
    )
    _assert_throttled(response)


@pytest.mark.parametrize("spelling", ["\u017ftaffer", "STAFFER", "\uff53\uff54\uff41\uff46\uff46\uff45\uff52"])
def test_every_spelling_that_signs_in_as_a_user_spends_that_users_budget(
    make_user: Any, settings: Any, spelling: str
) -> None:
    # ſtaffer (long s) and fullwidth ｓｔａｆｆｅｒ are staffer once normalised: the log-in finds staffer.
    make_user("staffer")
    client = APIClient()
    assert (
        client.post("/api/v1/auth/token/", {"username": spelling, "password": PASSWORD}, format="json").status_code
        == 200
    )
    for attempt in range(_limit(settings, "login", "username") - 1):
        response = client.post(
            "/api/v1/auth/token/",
            {"username": spelling, "password": f"wrong-{attempt}"},
            format="json",
            REMOTE_ADDR=f"10.0.2.{attempt + 1}",
        )
        assert response.status_code == 401
    for page in (False, True):
        if page:
            response = Client(REMOTE_ADDR="10.0.3.1").post("/login/", {"username": "staffer", "password": PASSWORD})
        else:
            response = client.post(
                "/api/v1/auth/token/",
                {"username": "staffer", "password": PASSWORD},
                format="json",
                REMOTE_ADDR="10.0.3.2",
            )
        assert response.status_code == 429, (page, response.status_code)


def test_one_address_trying_many_usernames_gets_429(settings: Any, db: None) -> None:
    client = APIClient()
    limit = _limit(settings, "login", "ip")
    statuses = [
        client.post("/api/v1/auth/token/", {"username": f"user{n}", "password": "x"}, format="json").status_code
        for n in range(limit + 1)
    ]
    assert statuses[:limit] == [401] * limit
    assert statuses[limit] == 429


def test_a_spoofed_x_forwarded_for_does_not_reset_the_address_budget(settings: Any, db: None) -> None:
    client = APIClient()
    limit = _limit(settings, "login", "ip")
    for n in range(limit):
        client.post(
            "/api/v1/auth/token/",
            {"username": f"user{n}", "password": "x"},
            format="json",
            HTTP_X_FORWARDED_FOR=f"192.0.2.{n}",
        )
    response = client.post(
        "/api/v1/auth/token/",
        {"username": "another", "password": "x"},
        format="json",
        HTTP_X_FORWARDED_FOR="192.0.2.99",
    )
    _assert_throttled(response)


def test_registration_burst_from_one_address_gets_429(settings: Any, db: None) -> None:
    client = APIClient()
    limit = _limit(settings, "register", "ip")
    for n in range(limit):
        body = {"username": f"farm{n}", "email": f"farm{n}@example.com", "password": PASSWORD}
        assert client.post("/api/v1/auth/register/", body, format="json").status_code == 201
    body = {"username": "farm_last", "email": "farm_last@example.com", "password": PASSWORD}
    _assert_throttled(client.post("/api/v1/auth/register/", body, format="json"))


def test_registration_attempts_on_one_username_get_429(settings: Any, db: None) -> None:
    client = APIClient()
    limit = _limit(settings, "register", "username")
    for n in range(limit):
        body = {"username": "squatter", "email": "not-an-email", "password": PASSWORD}
        response = client.post("/api/v1/auth/register/", body, format="json", REMOTE_ADDR=f"10.1.0.{n + 1}")
        assert response.status_code == 400
    body = {"username": "Squatter", "email": "ok@example.com", "password": PASSWORD}
    _assert_throttled(client.post("/api/v1/auth/register/", body, format="json", REMOTE_ADDR="10.1.1.1"))


def test_refresh_burst_gets_429(bob: Any, settings: Any) -> None:
    client = APIClient()
    limit = _limit(settings, "refresh", "username")
    refresh = tokens_for(bob)["refresh"]
    for n in range(limit):
        response = client.post(
            "/api/v1/auth/token/refresh/", {"refresh": refresh}, format="json", REMOTE_ADDR=f"10.2.0.{n + 1}"
        )
        assert response.status_code == 200
        refresh = response.json()["refresh"]
    response = client.post("/api/v1/auth/token/refresh/", {"refresh": refresh}, format="json", REMOTE_ADDR="10.2.1.1")
    _assert_throttled(response)


def test_refresh_burst_of_garbage_gets_429_per_address(settings: Any, db: None) -> None:
    client = APIClient()
    limit = _limit(settings, "refresh", "ip")
    for _ in range(limit):
        assert client.post("/api/v1/auth/token/refresh/", {"refresh": "junk"}, format="json").status_code == 401
    _assert_throttled(client.post("/api/v1/auth/token/refresh/", {"refresh": "junk"}, format="json"))


def test_the_rest_of_the_api_throttles_each_user(bob: Any, client_for: Any, settings: Any) -> None:
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "user": "5/min"}
    client = client_for(bob)
    statuses = [client.get("/api/v1/users/me/").status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    _assert_throttled(client.get("/api/v1/rooms/"))


def test_the_api_throttles_anonymous_callers_per_address(settings: Any, db: None) -> None:
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "anon": "3/min"}
    client = APIClient()
    statuses = [client.get("/api/schema/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


def test_the_admin_login_form_is_limited_like_the_token_route(settings: Any, db: None) -> None:
    client = Client()
    limit = _limit(settings, "login", "ip")
    for n in range(limit):
        response = client.post("/admin/login/", {"username": f"user{n}", "password": "x"})
        assert response.status_code == 200  # the form again, with an error
    response = client.post("/admin/login/", {"username": "root", "password": "x"})
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1


def test_ratelimit_enable_off_lifts_every_http_limit(bob: Any, client_for: Any, settings: Any) -> None:
    settings.RATELIMIT_ENABLE = False
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "user": "2/min"}
    anon = APIClient()
    limit = _limit(settings, "login", "username")
    statuses = {
        anon.post("/api/v1/auth/token/", {"username": "bob", "password": "wrong"}, format="json").status_code
        for _ in range(limit + 3)
    }
    assert statuses == {401}
    client = client_for(bob)
    assert {client.get("/api/v1/users/me/").status_code for _ in range(5)} == {200}


def test_the_limits_are_counted_in_the_shared_cache(settings: Any) -> None:
    # With REDIS_URL every process counts in Redis; without it, in this process's memory.
    assert settings.RATELIMIT_USE_CACHE == "default"
    assert "default" in settings.CACHES
