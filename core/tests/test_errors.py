"""API clients always get JSON they can parse, for unknown paths and for crashes alike."""

from __future__ import annotations

import pytest
from django.test import Client

from core.tests.broken_urls import SECRET_DETAIL


@pytest.fixture
def crash_client() -> Client:
    """A client that returns the 500 response instead of re-raising the view's exception."""
    client = Client()
    client.raise_request_exception = False
    return client


@pytest.mark.parametrize(
    "path",
    [
        "/api/",
        "/api/nope",
        "/api/v1/",
        "/api/v1/no-such-route/",
        "/api/v2/rooms/",
        "/api/v1/rooms/not-a-number/",
        "/api/v1/rooms/123456789012345678901234567890/",
        "/api/v1/messages/1/reactions/👍/extra/",
    ],
)
def test_unknown_api_path_answers_json_404(client: Client, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


def test_unknown_api_path_answers_json_404_for_unsafe_methods_too(client: Client) -> None:
    response = client.post("/api/v1/no-such-route/", data={}, content_type="application/json")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_unknown_path_outside_the_api_keeps_the_html_page(client: Client) -> None:
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


@pytest.mark.urls("core.tests.broken_urls")
@pytest.mark.parametrize("path", ["/api/v1/explode/", "/api/v1/explode-drf/"])
def test_unexpected_exception_under_api_answers_json_500(crash_client: Client, path: str) -> None:
    response = crash_client.get(path)

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Internal server error."}


@pytest.mark.urls("core.tests.broken_urls")
def test_json_500_does_not_leak_the_exception(crash_client: Client) -> None:
    response = crash_client.get("/api/v1/explode/")

    assert SECRET_DETAIL not in response.content.decode()
    assert "Traceback" not in response.content.decode()


@pytest.mark.urls("core.tests.broken_urls")
def test_unexpected_exception_outside_the_api_keeps_the_html_page(crash_client: Client) -> None:
    response = crash_client.get("/explode/")

    assert response.status_code == 500
    assert not response["Content-Type"].startswith("application/json")
    assert SECRET_DETAIL not in response.content.decode()
