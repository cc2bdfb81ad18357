"""OpenAPI generation: the schema states what the server enforces, and every error it can answer with.

A client generated from /api/schema/ must be right: query parameters carry
the bounds core.api enforces (`limit` 1–200, ids within 64 bits, `q` at most
200 characters), path ids are bounded integers (settings'
PATH_CONVERTER_OVERRIDES), request bodies refuse unknown fields, and each
operation lists the errors of docs/api.md it can give (400 field errors, 401
without credentials, 403, 404, 409, 413 and 415 for a body, 429 with
Retry-After, 503 while the database is away). schemathesis checks the server
against it (chatproject/tests/security/test_api_fuzzing.py).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular import openapi
from drf_spectacular.utils import Direction, OpenApiResponse
from rest_framework import serializers

from core.api import ID_MAX, PAGE_MAX, QUERY_TEXT_MAX, StrictSerializer


class ErrorSerializer(serializers.Serializer):
    """An error: `{"detail": "…"}`, or field names mapped to lists of messages."""

    detail = serializers.CharField(required=False)


ERRORS = {
    "400": "The input is not acceptable: field errors, or `detail`.",
    "401": "No valid credentials.",
    "403": "Not allowed: a public channel the caller is not in, or an action their role does not allow.",
    "404": "Not found, or not visible to the caller.",
    "409": "Conflicts with the current state.",
    "429": "Too many requests; retry after `Retry-After` seconds.",
    "503": "The database could not be reached in time; retry after `Retry-After` seconds.",
}
BODY_ERRORS = {
    "413": "The request body is over 2.5 MiB.",
    "415": "The request body is not `application/json`.",
}

# The query parameters core.api parses, with the bounds it enforces.
QUERY_PARAMETERS: dict[str, dict[str, Any]] = {
    "limit": {"type": "integer", "minimum": 1, "maximum": PAGE_MAX},
    "after": {"type": "integer", "minimum": 0, "maximum": ID_MAX},
    "before": {"type": "integer", "minimum": 1, "maximum": ID_MAX},
    "room": {"type": "integer", "minimum": 1, "maximum": ID_MAX},
    "q": {"type": "string", "maxLength": QUERY_TEXT_MAX, "pattern": "^[^\\x00]*$"},
}


class AutoSchema(openapi.AutoSchema):
    def _get_parameters(self) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super()._get_parameters()
        for parameter in parameters:
            bounded = QUERY_PARAMETERS.get(parameter["name"])
            if parameter["in"] == "query" and bounded is not None:
                parameter["schema"] = dict(bounded)
        return parameters

    def _insert_field_validators(self, field: Any, schema: dict[str, Any]) -> None:
        super()._insert_field_validators(field, schema)
        limit = getattr(field, "documented_max_length", None)
        if limit is not None:
            schema["maxLength"] = limit  # the service's limit on the trimmed text (core.api.trimmed_text)

    def _map_serializer(self, serializer: Any, direction: Direction, bypass_extensions: bool = False) -> Any:
        schema = super()._map_serializer(serializer, direction, bypass_extensions)
        if direction == "request" and isinstance(serializer, StrictSerializer):
            schema["additionalProperties"] = False  # an unknown field is a 400
        return schema

    def _get_response_bodies(self, direction: Direction = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        errors = {**ERRORS, **(BODY_ERRORS if self.method in ("POST", "PUT", "PATCH") else {})}
        for code, description in errors.items():
            if code not in responses:
                responses[code] = self._get_response_for_code(
                    OpenApiResponse(response=ErrorSerializer, description=description), code, direction=direction
                )
        return responses
