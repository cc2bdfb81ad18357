"""The wire shape of a file, as uploads answer and messages carry it."""

from __future__ import annotations

from typing import TypedDict

from django.urls import reverse

from files.models import StoredFile


class FilePayload(TypedDict):
    id: int
    name: str
    content_type: str
    size: int
    url: str
    thumbnail_url: str | None
    width: int | None
    height: int | None


def file_payload(stored: StoredFile) -> FilePayload:
    return {
        "id": stored.pk,
        "name": stored.name,
        "content_type": stored.content_type,
        "size": stored.size,
        "url": reverse("api:file", args=[stored.pk]),
        "thumbnail_url": reverse("api:file-thumbnail", args=[stored.pk]) if stored.thumbnail_key else None,
        "width": stored.width,
        "height": stored.height,
    }
