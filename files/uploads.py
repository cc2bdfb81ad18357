"""Reading an upload without holding it in memory, and refusing it as soon as it is too large.

Django's multipart parser hands the file to upload handlers chunk by chunk;
this one writes to a temporary file (memory stays flat at any size) and stops
the moment the file passes UPLOAD_MAX_BYTES, whatever Content-Length said.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.http import HttpRequest

from files.services import too_large_error

# Room for the multipart boundaries and part headers around the file itself.
MULTIPART_OVERHEAD = 64 * 1024


class SizeLimitedUploadHandler(TemporaryFileUploadHandler):
    def __init__(self, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> Any:
        self.received += len(raw_data)
        if self.received > settings.UPLOAD_MAX_BYTES:
            self.file.close()
            raise too_large_error()
        return super().receive_data_chunk(raw_data, start)


def declared_length(request: HttpRequest) -> int | None:
    """Return the request's Content-Length, or None when absent or not a number."""
    try:
        return int(request.META.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


def declared_too_large(length: int | None) -> bool:
    return length is not None and length > settings.UPLOAD_MAX_BYTES + MULTIPART_OVERHEAD
