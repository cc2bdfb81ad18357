"""Bad input on any API route gets a clear 4xx with a JSON body, never a 500 or an HTML page."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from core.parsers import MAX_DEPTH

OPEN_ROUTES = ["/api/v1/auth/register/", "/api/v1/auth/token/", "/api/v1/auth/token/refresh/"]


@pytest.fixture
def raw_client(db: None) -> Client:
    """A client that returns the 500 response instead of re-raising the view's exception."""
    return Client(raise_request_exception=False)


@pytest.fixture
def signed_in(raw_client: Client, alice: object) -> Client:
    from accounts.services import tokens_for

    raw_client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {tokens_for(alice)['access']}"  # type: ignore[arg-type]
    return raw_client


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def assert_json_error(response: object, status: int) -> dict[str, object]:
    assert response.status_code == status, response.content[:300]  # type: ignore[attr-defined]
    assert response["Content-Type"] == "application/json"  # type: ignore[index]
    body = response.json()  # type: ignore[attr-defined]
    assert isinstance(body, dict) and body
    return body


# --- Deeply nested JSON ---------------------------------------------------------------------


@pytest.mark.parametrize("path", OPEN_ROUTES)
def test_deeply_nested_json_on_an_open_route_is_a_json_400(raw_client, path):
    response = raw_client.post(path, data=nested(100_000), content_type="application/json")

    body = assert_json_error(response, 400)
    assert "nested too deeply" in body["detail"]


def test_deeply_nested_json_on_a_signed_in_route_is_a_json_400(signed_in):
    response = signed_in.post(
        "/api/v1/rooms/", data='{"name": ' + nested(100_000) + "}", content_type="application/json"
    )

    assert "nested too deeply" in assert_json_error(response, 400)["detail"]


def test_json_nested_past_the_limit_is_refused_even_where_the_decoder_copes(raw_client):
    body = json.dumps({"username": json.loads(nested(MAX_DEPTH + 1))})

    response = raw_client.post("/api/v1/auth/token/", data=body, content_type="application/json")

    assert "nested too deeply" in assert_json_error(response, 400)["detail"]


def test_json_nested_to_the_limit_reaches_the_view(raw_client):
    body = json.dumps({"username": json.loads(nested(MAX_DEPTH - 1)), "password": "x"})

    response = raw_client.post("/api/v1/auth/token/", data=body, content_type="application/json")

    # The serializer's own field error, not the parser's refusal.
    assert "username" in assert_json_error(response, 400)


# --- Lone surrogates ---------------------------------------------------------------------------

LONE_SURROGATES = ["\ud800", "al\udfffice", "\ud83d"]


@pytest.mark.parametrize("username", LONE_SURROGATES)
@pytest.mark.parametrize("path", ["/api/v1/auth/token/", "/api/v1/auth/register/"])
def test_a_lone_surrogate_in_the_username_is_a_json_400(raw_client, path, username):
    body = json.dumps({"username": username, "email": "x@example.com", "password": "quiet otter paints 7 lanterns"})

    response = raw_client.post(path, data=body, content_type="application/json")

    assert "username" in assert_json_error(response, 400)


@pytest.mark.parametrize("refresh", [*LONE_SURROGATES, "eyJhbGciOiJIUzI1NiJ9.\ud800.x"])
def test_a_lone_surrogate_in_the_refresh_token_is_a_json_400(raw_client, refresh):
    body = json.dumps({"refresh": refresh})

    response = raw_client.post("/api/v1/auth/token/refresh/", data=body, content_type="application/json")

    assert "refresh" in assert_json_error(response, 400)
