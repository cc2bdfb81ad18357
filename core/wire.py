"""Small helpers for the JSON wire format shared by every app."""

from __future__ import annotations

from datetime import datetime


def isoformat(moment: datetime | None) -> str | None:
    """Return an ISO 8601 UTC timestamp ending in Z, as docs/api.md promises."""
    if moment is None:
        return None
    return moment.isoformat().replace("+00:00", "Z")
