"""schemathesis against /api/schema/: no 5xx, every response as the schema says, every invalid input refused.

The checks: no server error; status codes, content types, headers and
bodies as documented; and what the schema calls invalid (bounds, types,
unknown fields) is refused. schemathesis' positive_data_acceptance is left
out: a schema-valid request can still be refused for the state it meets
(a taken name, a revoked token), which the documented 400 and 409 cover.

Each operation gets a bounded number of generated requests (SCHEMATHESIS_EXAMPLES,
default 6), sent in-process through Django's WSGI handler as a signed-in
user. Half of the generated path ids are swapped for ids that exist (the
caller's room, a message in it, another user), so the fuzzer gets past 404
into the validation and the services.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.models import User  # noqa: E402
from accounts.services import tokens_for  # noqa: E402
from conftest import PASSWORD  # noqa: E402
from messaging.services import message_post, reaction_add  # noqa: E402
from rooms import services as rooms  # noqa: E402

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "6"))
CHECKS = [
    not_a_server_error,
    # What the schema says is invalid (a limit of 201, an id of 0, a number for a string, an unknown field) is refused.
    negative_data_rejection,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


def _load_schema() -> Any:
    """The OpenAPI document exactly as /api/schema/ serves it, with requests sent through Django's WSGI handler."""
    from django.core.wsgi import get_wsgi_application
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    document = json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))
    loaded = schemathesis.openapi.from_dict(document)
    # The test signs every request in; a generated (or mutated) Authorization header would be overwritten.
    loaded.config.generation.update(with_security_parameters=False)
    loaded.app = get_wsgi_application()
    return loaded


schema = _load_schema()


@pytest.fixture(autouse=True)
def _no_rate_limits(settings: Any) -> None:
    # Let the fuzzer explore instead of meeting 429s (the limits have their own tests).
    settings.RATELIMIT_ENABLE = False


@pytest.fixture(autouse=True)
def _keep_the_test_connection() -> Iterator[None]:
    """Keep Django from closing the database connection after each request, as its test Client does.

    The requests run inside the test's transaction; a closed connection could
    not be reopened there (PostgreSQL).
    """
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_world(db: None) -> dict[str, Any]:
    fuzzer = User.objects.create_user(username="fuzzer", email="fuzzer@example.com", password=PASSWORD)
    other = User.objects.create_user(username="other", email="other@example.com", password=PASSWORD)
    room = rooms.room_create(creator=fuzzer, name="Fuzz")
    rooms.room_join(user=other, room=room)
    message, _ = message_post(room=room, author=other, body="fuzz **me** @fuzzer")
    reaction_add(user=fuzzer, message=message, emoji="👍")
    return {
        "token": tokens_for(fuzzer)["access"],
        "ids": {"room_id": room.pk, "message_id": message.pk, "user_id": other.pk, "emoji": "👍"},
    }


def _aim(case: Any, ids: dict[str, Any]) -> None:
    """Swap about half of the generated path parameters for ones that exist, decided by the generated value.

    Only in valid requests: a negative one must stay as invalid as generated.
    """
    if case.meta is not None and case.meta.generation.mode.is_negative:
        return
    for name, value in list((case.path_parameters or {}).items()):
        if name in ids and hash(str(value)) % 2 == 0:
            case.path_parameters[name] = ids[name]


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_never_fails_and_always_answers_as_documented(case: Any, fuzz_world: dict[str, Any]) -> None:
    _aim(case, fuzz_world["ids"])
    case.call_and_validate(headers={"Authorization": f"Bearer {fuzz_world['token']}"}, checks=CHECKS)
