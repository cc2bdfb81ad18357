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


# --- Django's own refusals, in JSON ----------------------------------------------------------------

TOO_BIG = 2 * 1024 * 1024 + 512 * 1024 + 1  # one byte over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MiB)


@pytest.fixture(params=[False, True], ids=["DEBUG=0", "DEBUG=1"])
def debug(request, settings) -> bool:  # type: ignore[no-untyped-def]
    settings.DEBUG = request.param
    return bool(request.param)


def too_big_body() -> str:
    return json.dumps({"username": "alice", "password": "x" * TOO_BIG})


@pytest.mark.parametrize("path", [*OPEN_ROUTES, "/api/v1/no-such-route/"])
def test_a_body_over_the_upload_limit_is_a_json_413(raw_client, debug, path):
    response = raw_client.post(path, data=too_big_body(), content_type="application/json")

    body = assert_json_error(response, 413)
    assert body["detail"] == "The request body is too large: at most 2.5 MiB."


def test_a_body_over_the_upload_limit_on_a_signed_in_route_is_a_json_413(signed_in, debug):
    response = signed_in.post("/api/v1/rooms/", data=too_big_body(), content_type="application/json")

    assert assert_json_error(response, 413)["detail"] == "The request body is too large: at most 2.5 MiB."


def test_a_chunked_body_over_the_upload_limit_is_a_json_413(db, debug):
    """Without a Content-Length (chunked), Django finds the size only once the body is in."""
    from asgiref.sync import async_to_sync
    from asgiref.testing import ApplicationCommunicator

    from chatproject.asgi import application

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/auth/token/",
        "raw_path": b"/api/v1/auth/token/",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }

    async def exchange() -> tuple[dict[str, object], bytes]:
        communicator = ApplicationCommunicator(application, scope)
        data = too_big_body().encode()
        for start in range(0, len(data), 1 << 20):
            await communicator.send_input(
                {"type": "http.request", "body": data[start : start + (1 << 20)], "more_body": True}
            )
        await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
        start_message = await communicator.receive_output(10)
        body = b""
        while True:
            message = await communicator.receive_output(10)
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await communicator.wait(10)
        return start_message, body

    start_message, body = async_to_sync(exchange)()

    assert start_message["status"] == 413
    headers = {name.lower(): value for name, value in start_message["headers"]}  # type: ignore[attr-defined]
    assert headers[b"content-type"] == b"application/json"
    assert json.loads(body) == {"detail": "The request body is too large: at most 2.5 MiB."}


def test_too_many_query_parameters_is_a_json_400(signed_in, debug):
    query = "&".join(f"p{number}=1" for number in range(1100))

    response = signed_in.get(f"/api/v1/users/?{query}")

    assert "Too many" in assert_json_error(response, 400)["detail"]


@pytest.mark.parametrize("path", ["/api/v1/users/", "/api/v1/auth/token/", "/api/v1/no-such-route/"])
def test_a_host_header_not_allowed_is_a_json_400(raw_client, debug, path):
    response = raw_client.post(path, data="{}", content_type="application/json", HTTP_HOST="evil.example")

    assert assert_json_error(response, 400) == {"detail": "The Host header is not one this server answers to."}


@pytest.mark.urls("core.tests.broken_urls")
def test_a_suspicious_request_to_a_plain_view_under_the_api_is_a_json_400(raw_client, debug):
    from core.tests.broken_urls import SECRET_DETAIL

    response = raw_client.get("/api/v1/suspicious/")

    assert assert_json_error(response, 400) == {"detail": "Bad request."}
    assert SECRET_DETAIL not in response.content.decode()


@pytest.mark.urls("core.tests.broken_urls")
def test_a_csrf_failure_under_the_api_is_a_json_403(db, debug):
    client = Client(enforce_csrf_checks=True)

    response = client.post("/api/v1/get-only/", data="{}", content_type="application/json")

    assert assert_json_error(response, 403)["detail"].startswith("CSRF Failed:")


@pytest.mark.urls("core.tests.broken_urls")
def test_a_csrf_failure_outside_the_api_keeps_djangos_page(db):
    client = Client(enforce_csrf_checks=True)

    response = client.post("/login/", data={"username": "x", "password": "y"})

    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.urls("core.tests.broken_urls")
def test_any_other_html_error_under_the_api_becomes_json(raw_client, debug):
    response = raw_client.put("/api/v1/get-only/", data="{}", content_type="application/json")

    assert assert_json_error(response, 405) == {"detail": "Method not allowed."}
    assert response["Allow"] == "GET"


# --- Values of another JSON type than the schema says -------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/rooms/", {"name": 0}, "name"),
        ("/api/v1/rooms/", {"name": "x", "topic": ["t"]}, "topic"),
        ("/api/v1/users/me/", {"display_name": 5}, "display_name"),
        ("/api/v1/auth/logout/", {"refresh": "x", "everywhere": 1}, "everywhere"),
        ("/api/v1/auth/logout/", {"refresh": "x", "everywhere": "true"}, "everywhere"),
        ("/api/v1/dms/", {"users": ["2"]}, "users"),
    ],
)
def test_a_value_of_another_json_type_is_a_400_not_coerced(signed_in, path, body, field):
    method = signed_in.patch if path.endswith("/me/") else signed_in.post
    response = method(path, data=json.dumps(body), content_type="application/json")

    assert field in assert_json_error(response, 400)


@pytest.mark.parametrize("query", ["limit=", "after=", "limit=&after=1"])
def test_an_empty_integer_query_parameter_is_a_400(signed_in, query):
    response = signed_in.get(f"/api/v1/users/?{query}")

    assert set(assert_json_error(response, 400)) <= {"limit", "after"}


def test_a_search_text_counts_its_length_as_sent(signed_in):
    response = signed_in.get("/api/v1/users/", {"q": " " * 150 + "a" * 51})

    assert "q" in assert_json_error(response, 400)
