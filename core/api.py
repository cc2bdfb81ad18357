"""Shared pieces of the REST layer: strict input serializers, query-parameter parsing and pages."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

from core.errors import Invalid

PAGE_DEFAULT = 50
PAGE_MAX = 200
# The largest id a 64-bit integer column holds.
ID_MAX = 2**63 - 1


class StrictSerializer(serializers.Serializer):
    """An input serializer that refuses fields it does not know, instead of ignoring them."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


def query_int(request: HttpRequest, name: str, *, minimum: int = 0, maximum: int = ID_MAX) -> int | None:
    """Return an integer query parameter, None when absent, or raise Invalid with a clear message."""
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise Invalid({name: "Must be a whole number."}) from None
    if value < minimum or value > maximum:
        raise Invalid({name: f"Must be between {minimum} and {maximum}."})
    return value


def page_limit(request: HttpRequest) -> int:
    limit = query_int(request, "limit", minimum=1, maximum=PAGE_MAX)
    return PAGE_DEFAULT if limit is None else limit


def query_text(request: HttpRequest, name: str, *, max_length: int = 200) -> str:
    value = request.GET.get(name, "").strip()
    if len(value) > max_length:
        raise Invalid({name: f"Use at most {max_length} characters."})
    if "\x00" in value:
        raise Invalid({name: "Contains a NUL character."})
    return value


def page_body(results: list[Any], has_more: bool) -> dict[str, Any]:
    return {"results": results, "has_more": has_more}


# What the schema says of `limit`, the query parameter page_limit reads.
LIMIT_PARAMETER = OpenApiParameter("limit", int, description=f"Page size, 1–{PAGE_MAX} (default {PAGE_DEFAULT})")


def page_serializer(name: str, item: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """Return a serializer named `name` for one page of `item`s, as page_body shapes it (for the schema)."""
    fields = {"results": item(many=True), "has_more": serializers.BooleanField(), "__module__": item.__module__}
    return type(name, (serializers.Serializer,), fields)
