"""The OpenAPI schema is valid and complete, and the docs page works without any CDN."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.drainage import reset_generator_stats
from openapi_spec_validator import validate

from core.api import ID_MAX

API_PREFIX = "/api/v1/"
OPENAPI_JSON = "application/vnd.oai.openapi+json"
IGNORED_METHODS = {"options", "head", "trace"}


def walk(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    """Yield (full route, pattern) for every endpoint in a URLconf, through every include()."""
    for entry in patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from walk(entry.url_patterns, route)
        else:
            yield route, entry


def openapi_path(route: str) -> str:
    """Turn a Django route like `rooms/<int:room_id>/` into OpenAPI's `/rooms/{room_id}/`."""
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)


def api_routes() -> dict[str, set[str]]:
    """Return each /api/v1/ path in the URLconf with the HTTP methods its view implements."""
    routes: dict[str, set[str]] = {}
    for route, pattern in walk(get_resolver().url_patterns):
        path = openapi_path(route)
        if not path.startswith(API_PREFIX):
            continue
        view_class = getattr(pattern.callback, "cls", None) or getattr(pattern.callback, "view_class", None)
        assert view_class is not None, f"{path} is not a class-based view"
        methods = {
            method
            for method in view_class.http_method_names
            if method not in IGNORED_METHODS and hasattr(view_class, method)
        }
        routes[path] = methods
    return routes


@pytest.fixture
def schema(client: Client) -> dict[str, Any]:
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    assert response["Content-Type"].startswith(OPENAPI_JSON)
    return response.json()


def test_api_routes_are_found_in_the_urlconf() -> None:
    routes = api_routes()

    # Guard the walk itself: an empty or tiny list would make the completeness test vacuous.
    assert len(routes) >= 20
    assert "/api/v1/rooms/{room_id}/messages/" in routes
    assert routes["/api/v1/rooms/{room_id}/messages/"] == {"get", "post"}


def test_schema_is_served_without_credentials_as_json(client: Client) -> None:
    response = client.get("/api/schema/", HTTP_ACCEPT=OPENAPI_JSON)

    assert response.status_code == 200
    assert response["Content-Type"].startswith(OPENAPI_JSON)
    assert response.json()["openapi"].startswith("3.")


def test_schema_is_a_valid_openapi_3_document(schema: dict[str, Any]) -> None:
    assert schema["openapi"].startswith("3.")

    validate(schema)


def test_schema_documents_every_api_route_and_method(schema: dict[str, Any]) -> None:
    documented = {
        path: set(operations) & {"get", "post", "put", "patch", "delete"}
        for path, operations in schema["paths"].items()
    }

    for path, methods in api_routes().items():
        assert path in documented, f"{path} is routed but missing from the schema"
        assert methods <= documented[path], f"{path}: {sorted(methods - documented[path])} not documented"


def test_schema_documents_nothing_that_is_not_routed(schema: dict[str, Any]) -> None:
    assert set(schema["paths"]) == set(api_routes())


def test_schema_documents_path_ids_as_integers(schema: dict[str, Any]) -> None:
    id_parameters = [
        (path, parameter)
        for path, operations in schema["paths"].items()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "path" and parameter["name"].endswith("_id")
    ]

    assert id_parameters
    for path, parameter in id_parameters:
        assert parameter["schema"]["type"] == "integer", f"{path}: {parameter['name']} is {parameter['schema']}"


def operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_schema_bounds_path_ids_as_the_server_does(schema: dict[str, Any]) -> None:
    for path, _, operation in operations(schema):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and parameter["name"].endswith("_id"):
                assert parameter["schema"] == {"type": "integer", "minimum": 1, "maximum": ID_MAX}, path


QUERY_BOUNDS = {
    "limit": {"type": "integer", "minimum": 1, "maximum": 200},
    "after": {"type": "integer", "minimum": 0, "maximum": ID_MAX},
    "before": {"type": "integer", "minimum": 1, "maximum": ID_MAX},
    "room": {"type": "integer", "minimum": 1, "maximum": ID_MAX},
    "q": {"type": "string", "maxLength": 200, "pattern": "^[^\\x00]*$"},
}


def test_schema_states_the_query_limits_the_server_enforces(schema: dict[str, Any]) -> None:
    seen = set()
    for path, method, operation in operations(schema):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "query" and parameter["name"] in QUERY_BOUNDS:
                seen.add(parameter["name"])
                assert parameter["schema"] == QUERY_BOUNDS[parameter["name"]], (method, path, parameter)
                # Only search's words are required; every other parameter may be left out.
                assert parameter.get("required", False) == (
                    path.endswith("/search/messages/") and parameter["name"] == "q"
                )
    assert seen == set(QUERY_BOUNDS)


def test_schema_states_presence_users_as_an_optional_list_of_ids(schema: dict[str, Any]) -> None:
    [users] = schema["paths"]["/api/v1/presence/"]["get"]["parameters"]

    assert not users.get("required", False)
    assert (users["style"], users["explode"]) == ("form", False)
    assert users["schema"] == {
        "type": "array",
        "items": {"type": "integer", "minimum": 1, "maximum": ID_MAX},
        "maxItems": 200,
    }


def test_schema_says_request_bodies_refuse_unknown_fields(schema: dict[str, Any]) -> None:
    token_routes = {"/api/v1/auth/token/", "/api/v1/auth/token/refresh/"}  # simplejwt's: extra fields ignored
    for path, method, operation in operations(schema):
        body = operation.get("requestBody")
        if body is None or path in token_routes:
            continue
        # JSON everywhere but the multipart upload of a file.
        (media,) = [
            media for kind, media in body["content"].items() if kind in ("application/json", "multipart/form-data")
        ]
        reference = media["schema"]["$ref"]
        component = schema["components"]["schemas"][reference.rsplit("/", 1)[-1]]
        assert component.get("additionalProperties") is False, (method, path)


@pytest.mark.parametrize(
    ("component", "field", "limit"),
    [
        ("RoomCreateInputRequest", "name", 80),
        ("RoomCreateInputRequest", "topic", 250),
        ("PatchedRoomUpdateInputRequest", "name", 80),
        ("MessagePostInputRequest", "body", 4000),
        ("PatchedMessageEditInputRequest", "body", 4000),
        ("ReactionInputRequest", "emoji", 32),
        ("PatchedProfileInputRequest", "display_name", 64),
        ("RegisterInputRequest", "display_name", 64),
    ],
)
def test_schema_states_the_text_limits_the_services_enforce(
    schema: dict[str, Any], component: str, field: str, limit: int
) -> None:
    assert schema["components"]["schemas"][component]["properties"][field]["maxLength"] == limit


def test_schema_lists_the_errors_each_operation_can_give(schema: dict[str, Any]) -> None:
    for path, method, operation in operations(schema):
        codes = set(operation["responses"])
        assert {"400", "401", "403", "404", "409", "429", "503"} <= codes, (method, path)
        if method in ("post", "put", "patch"):
            assert {"413", "415"} <= codes, (method, path)


def test_schema_declares_bearer_authentication(schema: dict[str, Any]) -> None:
    schemes = schema["components"]["securitySchemes"].values()

    assert any(scheme.get("type") == "http" and scheme.get("scheme") == "bearer" for scheme in schemes)


def test_schema_generation_passes_strict_validation(capsys: pytest.CaptureFixture[str]) -> None:
    # Warnings are counted per process; start from none so earlier schema builds do not leak in.
    reset_generator_stats()

    call_command("spectacular", "--validate", "--fail-on-warn", stdout=StringIO())

    assert "Warning" not in capsys.readouterr().err


class AssetCollector(HTMLParser):
    """Collect the URLs a page loads through script, link and img tags."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href", "img": "src"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value)


def docs_assets(client: Client) -> list[str]:
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    collector = AssetCollector()
    collector.feed(response.content.decode())
    return collector.urls


def test_docs_page_loads_only_local_static_assets(client: Client) -> None:
    urls = docs_assets(client)

    assert any(url.endswith(".js") for url in urls)
    assert any(url.endswith(".css") for url in urls)
    # The docs must work offline and leak no visits to a third-party host.
    for url in urls:
        assert not re.match(r"^(https?:)?//", url), f"{url} is loaded from another host"
        # The start-up script comes from the docs view itself (no inline script under the CSP).
        assert url.startswith(("/static/", "/api/docs/?")), f"{url} is not a local asset"


def test_docs_static_assets_are_served(client: Client, settings: Any) -> None:
    # Serve from the installed packages as in development; the image serves collectstatic's copy.
    settings.WHITENOISE_USE_FINDERS = True
    settings.WHITENOISE_AUTOREFRESH = True

    for url in docs_assets(client):
        response = client.get(url)
        # Consuming streaming_content also closes the file behind it.
        body = b"".join(response.streaming_content) if response.streaming else response.content

        assert response.status_code == 200, url
        assert body, f"{url} is empty"
