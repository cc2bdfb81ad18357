"""OpenAPI generation: every operation also documents the errors it can answer with.

The rules of docs/api.md hold on every route (400 field errors, 401 without
credentials, 403, 404, 409, 429 with Retry-After), so the schema says so and
a client generated from it, or a fuzzer checking against it, expects them.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular import openapi
from drf_spectacular.utils import Direction, OpenApiResponse
from rest_framework import serializers


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
}


class AutoSchema(openapi.AutoSchema):
    def _get_response_bodies(self, direction: Direction = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code, description in ERRORS.items():
            if code not in responses:
                responses[code] = self._get_response_for_code(
                    OpenApiResponse(response=ErrorSerializer, description=description), code, direction=direction
                )
        return responses
