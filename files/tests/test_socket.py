"""Attachments over the socket: `message.send` with `attachments`, and the thumbnail arriving as message.updated."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from files.services import upload_store
from files.tests.conftest import image_bytes, run_jobs
from realtime.tests.test_consumers import asynctest, call, connect

pytestmark = pytest.mark.django_db(transaction=True)


def stored_upload(user: Any, room: Any, data: bytes, name: str) -> int:
    upload = SimpleUploadedFile(name, data)
    return upload_store(room_id=room.pk, uploader=user, upload=io.BytesIO(data), name=name, size=upload.size).pk


@asynctest
async def test_message_send_with_attachments_and_no_body_posts_the_files(alice, bob, lobby) -> None:
    file_id = await call(stored_upload, alice, lobby, b"%PDF-1.4\n%%EOF\n", "plan.pdf")
    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    await alice_socket.send({"type": "message.send", "room": lobby.pk, "attachments": [file_id], "client_id": "f-1"})
    frame = await bob_socket.recv()
    assert frame["type"] == "message.new"
    assert frame["message"]["body"] == ""
    [attachment] = frame["message"]["attachments"]
    assert attachment["id"] == file_id
    assert attachment["name"] == "plan.pdf"
    assert attachment["content_type"] == "application/pdf"
    mine = await alice_socket.recv()
    assert mine["message"]["client_id"] == "f-1"


@asynctest
async def test_message_send_with_someone_elses_file_is_an_invalid_frame(alice, bob, lobby) -> None:
    file_id = await call(stored_upload, alice, lobby, b"notes", "notes.txt")
    socket = await connect(bob)
    reply = await socket.error(
        {"type": "message.send", "room": lobby.pk, "body": "mine now", "attachments": [file_id], "client_id": "x"}
    )
    assert reply["code"] == "invalid"
    assert "attachments" in reply["detail"]
    assert reply["client_id"] == "x"


@asynctest
async def test_message_send_without_body_or_attachments_is_refused(alice, lobby) -> None:
    socket = await connect(alice)
    reply = await socket.error({"type": "message.send", "room": lobby.pk, "client_id": "y"})
    assert reply["code"] == "bad_request"


@asynctest
async def test_the_thumbnail_arrives_as_message_updated(alice, bob, lobby) -> None:
    file_id = await call(stored_upload, alice, lobby, image_bytes((900, 600)), "view.jpg")
    bob_socket = await connect(bob)
    alice_socket = await connect(alice)
    await alice_socket.send({"type": "message.send", "room": lobby.pk, "attachments": [file_id], "client_id": "img"})
    posted = await bob_socket.recv()
    assert posted["message"]["attachments"][0]["thumbnail_url"] is None
    assert await call(run_jobs) >= 1
    updated = await bob_socket.recv()
    assert updated["type"] == "message.updated"
    [attachment] = updated["message"]["attachments"]
    assert attachment["thumbnail_url"] == f"/api/v1/files/{file_id}/thumbnail/"
    assert (attachment["width"], attachment["height"]) == (900, 600)
