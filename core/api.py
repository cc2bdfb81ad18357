"""Shared pieces of the REST layer: strict input serializers, query-parameter parsing and pages."""

from __future__ import annotations

import re
from typing import Any

from django.http import HttpRequest
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

from core.errors import Invalid

PAGE_DEFAULT = 50
PAGE_MAX = 200
# Longest search text (`q`) a query parameter may carry.
QUERY_TEXT_MAX = 200
# The largest id a 64-bit integer column holds.
ID_MAX = 2**63 - 1


class StrictSerializer(serializers.Serializer):
    """Input that refuses unknown fields, and values not of their JSON type."""

    # DRF reads 0 as the string "0", 1 and "true" as True and "5" as 5, where
    # the schema (and a client generated from it) says string, boolean, integer.

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
            wrong = {
                name: [message]
                for name, field in self.fields.items()
                if name in data and (message := _json_type_error(field, data[name])) is not None
            }
            if wrong:
                raise serializers.ValidationError(wrong)
        return super().to_internal_value(data)


class TrimmedText(serializers.CharField):
    """Text whose limit (`limit`, the schema's maxLength) the service checks on the trimmed value.

    The field's own max_length is higher and only bounds what is parsed; the
    service trims and then checks `limit`, with the same message over REST
    and WebSocket. The schema states the limit a client must keep to.
    """

    def __init__(self, *, limit: int, **kwargs: Any) -> None:
        self.documented_max_length = limit  # read by core.schema.AutoSchema
        super().__init__(**kwargs)


def _json_type_error(field: serializers.Field, value: Any) -> str | None:
    """Return why `value` is not of the JSON type `field` documents, or None (null is the field's own business)."""
    if value is None:
        return None
    if isinstance(field, serializers.BooleanField):
        return None if isinstance(value, bool) else "Must be true or false."
    if isinstance(field, serializers.IntegerField):
        return None if isinstance(value, int) and not isinstance(value, bool) else "Must be a whole number."
    if isinstance(field, serializers.CharField):
        return None if isinstance(value, str) else "Must be a string."
    if isinstance(field, serializers.ListField) and isinstance(value, list):
        for item in value:
            error = _json_type_error(field.child, item)
            if error is not None:
                return error
    return None


# ASCII digits only: int() also reads "١٢", "1_000" and " 5 ", and str.isdigit()
# accepts "²", which int() then refuses. Longer than any 64-bit id is no id.
_WHOLE_NUMBER = re.compile(r"-?[0-9]{1,20}")


def whole_number(raw: str) -> int | None:
    """Return the integer `raw` spells in ASCII digits (an optional leading minus), else None."""
    return int(raw) if _WHOLE_NUMBER.fullmatch(raw) else None


def query_int(request: HttpRequest, name: str, *, minimum: int = 0, maximum: int = ID_MAX) -> int | None:
    """Return an integer query parameter, None when absent, or raise Invalid with a clear message."""
    raw = request.GET.get(name)
    if raw is None:
        return None
    # An empty value (`?limit=`) is no integer either: the schema says so, and a client meant something.
    value = whole_number(raw)
    if value is None:
        raise Invalid({name: "Must be a whole number."})
    if value < minimum or value > maximum:
        raise Invalid({name: f"Must be between {minimum} and {maximum}."})
    return value


def page_limit(request: HttpRequest) -> int:
    limit = query_int(request, "limit", minimum=1, maximum=PAGE_MAX)
    return PAGE_DEFAULT if limit is None else limit


def query_text(request: HttpRequest, name: str, *, max_length: int = QUERY_TEXT_MAX) -> str:
    """Return a text query parameter, trimmed; its length counts as sent, as the schema says."""
    value = request.GET.get(name, "")
    if len(value) > max_length:
        raise Invalid({name: f"Use at most {max_length} characters."})
    if "\x00" in value:
        raise Invalid({name: "Contains a NUL character."})
    return value.strip()


def page_body(results: list[Any], has_more: bool) -> dict[str, Any]:
    return {"results": results, "has_more": has_more}


# What the schema says of `limit`, the query parameter page_limit reads.
LIMIT_PARAMETER = OpenApiParameter("limit", int, description=f"Page size, 1–{PAGE_MAX} (default {PAGE_DEFAULT})")


def page_serializer(name: str, item: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """Return a serializer named `name` for one page of `item`s, as page_body shapes it (for the schema)."""
    fields = {"results": item(many=True), "has_more": serializers.BooleanField(), "__module__": item.__module__}
    return type(name, (serializers.Serializer,), fields)
