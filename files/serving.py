"""Sending file bytes safely: from the local folder with ranges, through the proxy, or by a signed URL.

Every file response carries `nosniff`, a sandboxing Content-Security-Policy
and a Content-Disposition: inline only for types a browser shows without
running anything (images but SVG, PDF, plain text, audio, video), an
attachment for everything else. SVG and HTML are never sent inline.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import AsyncIterator
from typing import IO, Any

from django.conf import settings
from django.http import HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.utils.http import content_disposition_header

from files.storage import SIGNED_URL_SECONDS, files_storage, is_object_store

INLINE_TYPES = frozenset(
    {
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "application/pdf",
        "text/plain",
        "audio/mpeg",
        "audio/ogg",
        "audio/wav",
        "audio/mp4",
        "video/mp4",
        "video/webm",
    }
)
# Nothing in a file may run, load or submit anything, even opened on its own.
FILE_CSP = "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; sandbox"
CHUNK = 64 * 1024
# Files up to this size are sent from memory in one piece (memory per request stays bounded).
SMALL_FILE_BYTES = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def wire_type(content_type: str) -> str:
    """The Content-Type to send: the sniffed type when shown inline, else a neutral binary type."""
    if content_type == "text/plain":
        return "text/plain; charset=utf-8"
    return content_type if content_type in INLINE_TYPES else "application/octet-stream"


def download_name(name: str) -> str:
    # Separators would read as folders to a browser saving the file.
    return name.replace("/", "_").replace("\\", "_") or "file"


# Who may read a file is checked at every request that reaches us: no shared cache keeps a copy,
# and a browser asks again before using its copy of a download.
DOWNLOAD_CACHE_CONTROL = "private, no-cache"
# A thumbnail a browser has fetched it may show again for this long without asking: a room page
# shown again (switching rooms, a reload) costs no request per image. The trade-off: someone
# removed from the room (or whose message was deleted) may still see, in their own browser, a
# preview they already fetched, for at most this long; nothing they had not received. No longer
# than a signed object-store URL already lets a removed member fetch the full file.
THUMBNAIL_CACHE_CONTROL = f"private, max-age={SIGNED_URL_SECONDS}"


def entity_tag(key: str) -> str:
    """A strong ETag for the bytes stored under `key`: keys are never reused, so the key names the bytes."""
    return '"' + hashlib.blake2b(key.encode(), digest_size=12).hexdigest() + '"'


def _etag_matches(if_none_match: str, etag: str) -> bool:
    return any(tag.strip().removeprefix("W/") in (etag, "*") for tag in if_none_match.split(","))


def _protect(
    response: HttpResponseBase, *, content_type: str, name: str, cache_control: str = DOWNLOAD_CACHE_CONTROL
) -> HttpResponseBase:
    inline = content_type in INLINE_TYPES
    response["Content-Disposition"] = content_disposition_header(not inline, download_name(name)) or "attachment"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = FILE_CSP
    response["Cache-Control"] = cache_control
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    return response


def file_response(
    *,
    method: str,
    key: str,
    content_type: str,
    name: str,
    range_header: str,
    if_none_match: str = "",
    cache_control: str = DOWNLOAD_CACHE_CONTROL,
) -> HttpResponseBase:
    """Answer a download of the object `key` (its reader already checked).

    A browser's copy still current (`If-None-Match` naming this key's ETag) is
    answered 304 without opening the file; the reader was checked all the same.
    """
    if is_object_store():
        return _protect(_signed_redirect(key, content_type, name), content_type=content_type, name=name)
    etag = entity_tag(key)
    if if_none_match and method in ("GET", "HEAD") and _etag_matches(if_none_match, etag):
        unchanged = HttpResponse(status=304)
        unchanged["ETag"] = etag
        return _protect(unchanged, content_type=content_type, name=name, cache_control=cache_control)
    storage = files_storage()
    if settings.FILES_ACCEL_REDIRECT:
        sent = _proxy_sends(key, content_type)
        sent["ETag"] = etag
        return _protect(sent, content_type=content_type, name=name, cache_control=cache_control)
    try:
        handle = open(storage.path(key), "rb")  # noqa: SIM115 (closed by the response's iterator)
    except FileNotFoundError:
        return HttpResponse(b'{"detail": "File not found."}', status=404, content_type="application/json")
    size = os.fstat(handle.fileno()).st_size
    if method == "HEAD":
        handle.close()
        head = HttpResponse(content_type=wire_type(content_type))
        head["Content-Length"], head["Accept-Ranges"] = str(size), "bytes"
        head["ETag"] = etag
        return _protect(head, content_type=content_type, name=name, cache_control=cache_control)
    if size <= SMALL_FILE_BYTES and not range_header:
        # A thumbnail, mostly: read at once on this (request's) thread; streaming would cost
        # two thread hops per chunk, more than the bytes themselves.
        with handle:
            response: HttpResponseBase = HttpResponse(handle.read(), content_type=wire_type(content_type))
        response["Accept-Ranges"] = "bytes"
    else:
        response = _local_response(handle, size=size, content_type=wire_type(content_type), range_header=range_header)
    if response.status_code in (200, 206):
        response["ETag"] = etag
    return _protect(response, content_type=content_type, name=name, cache_control=cache_control)


def _signed_redirect(key: str, content_type: str, name: str) -> HttpResponse:
    inline = content_type in INLINE_TYPES
    storage: Any = files_storage()  # django-storages' S3Storage: its url() signs with these parameters
    url = storage.url(
        key,
        parameters={
            "ResponseContentType": wire_type(content_type),
            "ResponseContentDisposition": content_disposition_header(not inline, download_name(name)) or "attachment",
        },
        expire=SIGNED_URL_SECONDS,
    )
    response = HttpResponse(status=302)
    response["Location"] = url
    # The signed URL is valid for minutes: no one may keep the redirect.
    response["Cache-Control"] = "private, no-store"
    return response


def _proxy_sends(key: str, content_type: str) -> HttpResponse:
    response = HttpResponse(content_type=wire_type(content_type))
    if settings.FILES_ACCEL_REDIRECT == "sendfile":
        response["X-Sendfile"] = files_storage().path(key)
    else:
        response["X-Accel-Redirect"] = settings.FILES_ACCEL_PREFIX.rstrip("/") + "/" + key
    return response


def _local_response(handle: IO[bytes], *, size: int, content_type: str, range_header: str) -> HttpResponseBase:
    span = _parse_range(range_header, size)
    if span == "unsatisfiable":
        handle.close()
        refusal = HttpResponse(
            b'{"detail": "The range starts past the end of the file."}', status=416, content_type="application/json"
        )
        refusal["Content-Range"] = f"bytes */{size}"
        return refusal
    if span is None:
        start, end, status = 0, size - 1, 200
    else:
        assert isinstance(span, tuple)
        start, end, status = span[0], span[1], 206
    # An async iterator: Django under ASGI would read a sync one whole into memory first.
    response = StreamingHttpResponse(_read_span(handle, start, end), status=status, content_type=content_type)
    if status == 206:
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    response["Content-Length"] = str(max(0, end - start + 1))
    response["Accept-Ranges"] = "bytes"
    return response


def _parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """Return (first, last) byte of a single range, "unsatisfiable", or None to send everything.

    Several ranges at once are answered with the whole file, which RFC 9110 allows.
    """
    match = _RANGE.match(header.strip()) if header else None
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        length = int(last)
        if length == 0:
            return "unsatisfiable"
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        return "unsatisfiable"
    return start, end


async def _read_span(handle: IO[bytes], start: int, end: int) -> AsyncIterator[bytes]:
    """Yield bytes start..end of the file a chunk at a time, each read off the event loop."""
    try:
        await asyncio.to_thread(handle.seek, start)
        left = end - start + 1
        while left > 0:
            chunk = await asyncio.to_thread(handle.read, min(CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk
    finally:
        handle.close()
