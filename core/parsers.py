"""The API's JSON parser: DRF's, refusing what would otherwise crash further in.

A body of thousands of nested brackets made the decoder raise RecursionError
(a 500, on routes that need no credentials). Such a body, and anything nested
deeper than MAX_DEPTH, is refused with a 400 before any view sees it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

# No request body of the API nests deeper than a few levels.
MAX_DEPTH = 32
TOO_DEEP = f"JSON nested too deeply: at most {MAX_DEPTH} levels of arrays and objects."


class JSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(TOO_DEEP) from None
        refusal = _refusal(data)
        if refusal is not None:
            raise ParseError(refusal)
        return data


def _refusal(data: Any) -> str | None:
    """Return why a decoded body is refused, or None. Walks without recursion."""
    pending: list[tuple[Any, int]] = [(data, 0)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            if depth >= MAX_DEPTH:
                return TOO_DEEP
            pending.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            if depth >= MAX_DEPTH:
                return TOO_DEEP
            pending.extend((item, depth + 1) for item in value)
    return None
