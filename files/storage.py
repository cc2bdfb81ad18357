"""Where file bytes live: the local folder MEDIA_ROOT, or an S3-compatible bucket when S3_BUCKET is set.

Both are Django storages under the alias "files" (settings.STORAGES), so the
rest of the app only saves, opens, deletes and asks for URLs. Keys are made
here, never from the uploaded name as given.
"""

from __future__ import annotations

import re
import unicodedata
import uuid

from django.conf import settings
from django.core.files.storage import Storage, storages
from django.utils import timezone

FILES_STORAGE = "files"
SAFE_NAME_MAX = 100
# At most this long on an object store, as the spec promises clients.
SIGNED_URL_SECONDS = 300


def files_storage() -> Storage:
    return storages[FILES_STORAGE]


def is_object_store() -> bool:
    """True when the bytes live in S3 (downloads redirect to a signed URL), False for the local folder."""
    return bool(settings.S3_BUCKET)


def display_name(raw: object) -> str:
    """Return the uploaded name for display: control characters (NUL included) removed, at most 1024 characters.

    Path separators stay: they are only ever shown, never used as a path.
    """
    text = raw if isinstance(raw, str) else ""
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cc").strip()
    return text[:1024] or "file"


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """Return a storage-safe version of a name: its last path part, ASCII letters, digits, dots, dashes."""
    last = re.split(r"[/\\]", name)[-1]
    ascii_name = unicodedata.normalize("NFKD", last).encode("ascii", "ignore").decode()
    cleaned = _UNSAFE.sub("_", ascii_name).strip("._") or "file"
    if len(cleaned) > SAFE_NAME_MAX:
        stem, dot, extension = cleaned.rpartition(".")
        extension = extension[:10] if dot and stem else ""
        cleaned = cleaned[: SAFE_NAME_MAX - len(extension) - 1].rstrip("._") + ("." + extension if extension else "")
    return cleaned


def new_key(name: str) -> str:
    """Return a fresh storage key for a file called `name`: unguessable, dated, ending with its safe name."""
    return f"files/{timezone.now():%Y/%m}/{uuid.uuid4().hex}/{safe_name(name)}"


def thumbnail_key_for(key: str, extension: str) -> str:
    return f"thumbnails/{key.removeprefix('files/')}.{extension}"
