"""docs/api.md and the OpenAPI schema list the same routes, so neither can drift from the other.

docs/api.md gives each route a heading of one fixed form, the method and the
full path in backticks, as the schema writes it:

    ### `GET /api/v1/rooms/{room_id}/`

Every such heading must be an operation of GET /api/schema/, and every
operation of the schema must have its heading. The few endpoints the schema
cannot describe (the schema and its docs page themselves, the probes,
/metrics) are listed in NOT_IN_SCHEMA and must be documented too.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

API_REFERENCE = Path(settings.BASE_DIR) / "docs" / "api.md"
ROUTE_HEADING = re.compile(r"^#{2,4} `(GET|POST|PUT|PATCH|DELETE) (/\S*)`\s*$")
SCHEMA_METHODS = {"get", "post", "put", "patch", "delete"}
# Plain Django views and middleware: real endpoints that no OpenAPI operation describes.
NOT_IN_SCHEMA = {
    ("GET", "/api/schema/"),
    ("GET", "/api/docs/"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
}

Route = tuple[str, str]


def documented_routes(text: str) -> list[Route]:
    """Return (method, path) for every route heading of the reference, in order, repeats included."""
    routes: list[Route] = []
    for line in text.splitlines():
        match = ROUTE_HEADING.match(line)
        if match:
            routes.append((match.group(1), match.group(2)))
    return routes


def schema_routes(schema: dict[str, Any]) -> set[Route]:
    return {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method in operations
        if method in SCHEMA_METHODS
    }


def listing(routes: set[Route]) -> str:
    return "\n".join(f"  {method} {path}" for method, path in sorted(routes, key=lambda route: (route[1], route[0])))


@pytest.fixture
def schema(client: Client) -> dict[str, Any]:
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def test_the_route_heading_pattern_reads_only_route_headings() -> None:
    text = "\n".join(
        [
            "### `GET /api/v1/rooms/{room_id}/`",
            "## `DELETE /api/v1/messages/{message_id}/reactions/{emoji}/`",
            "### GET /api/v1/rooms/",  # no backticks: prose, not a route heading
            "`POST /api/v1/rooms/` in a sentence",
            "##### `GET /healthz`",  # too deep
        ]
    )

    assert documented_routes(text) == [
        ("GET", "/api/v1/rooms/{room_id}/"),
        ("DELETE", "/api/v1/messages/{message_id}/reactions/{emoji}/"),
    ]


def test_every_schema_operation_is_documented_in_api_md(schema: dict[str, Any]) -> None:
    documented = set(documented_routes(API_REFERENCE.read_text()))
    in_schema = schema_routes(schema)

    # Guard against a vacuous pass: the schema must describe the API.
    assert len(in_schema) >= 30, f"the schema lists only {len(in_schema)} operations"
    missing = in_schema - documented
    assert not missing, (
        f"{len(missing)} route(s) of /api/schema/ have no heading in docs/api.md; "
        f"add one of the form ### `METHOD /path/` for each:\n{listing(missing)}"
    )


def test_every_route_documented_in_api_md_exists(schema: dict[str, Any]) -> None:
    documented = set(documented_routes(API_REFERENCE.read_text()))

    unknown = documented - schema_routes(schema) - NOT_IN_SCHEMA
    assert not unknown, (
        f"{len(unknown)} route heading(s) of docs/api.md are not operations of /api/schema/ "
        f"(removed, renamed, or a typo in the method or path):\n{listing(unknown)}"
    )


def test_endpoints_outside_the_schema_are_documented_in_api_md() -> None:
    documented = set(documented_routes(API_REFERENCE.read_text()))

    missing = NOT_IN_SCHEMA - documented
    assert not missing, f"docs/api.md has no heading for:\n{listing(missing)}"


def test_api_md_documents_each_route_once() -> None:
    counts = Counter(documented_routes(API_REFERENCE.read_text()))

    repeated = {route for route, count in counts.items() if count > 1}
    assert not repeated, f"docs/api.md has more than one heading for:\n{listing(repeated)}"
