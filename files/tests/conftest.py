"""Fixtures for file tests: images made with Pillow, uploads through the API, the job queue run in place."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image
from rest_framework.test import APIClient


def image_bytes(
    size: tuple[int, int] = (800, 600), *, image_format: str = "JPEG", exif: Image.Exif | None = None, **save: Any
) -> bytes:
    """Return an image of two colours (left red, right blue), so orientation can be checked."""
    image = Image.new("RGB", size, (200, 0, 0))
    image.paste((0, 0, 200), (size[0] // 2, 0, size[0], size[1]))
    out = io.BytesIO()
    if exif is not None:
        save["exif"] = exif
    image.save(out, format=image_format, **save)
    return out.getvalue()


def upload_file(client: APIClient, room_id: int, data: bytes, name: str = "file.bin") -> Any:
    handle = io.BytesIO(data)
    handle.name = name
    return client.post(f"/api/v1/rooms/{room_id}/uploads/", {"file": handle}, format="multipart")


@pytest.fixture
def upload(client_for: Callable[[object], APIClient]) -> Callable[..., Any]:
    """Return upload(user, room, data, name) -> the response of POST rooms/{id}/uploads/."""

    def post(user: object, room: Any, data: bytes, name: str = "file.bin") -> Any:
        return upload_file(client_for(user), room.pk, data, name)

    return post


def run_jobs() -> int:
    """Run every due job of the queue in this process, as a worker would; return how many ran."""
    from jobs.worker import Worker

    worker = Worker(worker_id="test-worker", scheduler=False, poll_interval=0.0)
    ran = 0
    # Bounded: thumbnails enqueue nothing further.
    for _ in range(50):
        if not worker.run_once():
            break
        ran += 1
    return ran


def body_of(response: Any) -> bytes:
    """Read a response's whole body, streamed (async iterator) or not."""
    if not getattr(response, "streaming", False):
        return bytes(response.content)
    from asgiref.sync import async_to_sync

    async def collect() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    return async_to_sync(collect)()
