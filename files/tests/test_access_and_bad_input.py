"""Who may read a file, checked at every request, and every bad upload or attachment answered clearly."""

from __future__ import annotations

import io

import pytest
from django.test import Client
from PIL import Image

from files.models import StoredFile
from files.services import attachments_claim
from files.tests.conftest import body_of, image_bytes, upload_file
from messaging.models import Message
from messaging.services import message_delete
from rooms import services as room_services

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n%%EOF\n"


@pytest.fixture
def shared(upload, alice, lobby, client_for):  # type: ignore[no-untyped-def]
    """A PDF alice posted in lobby (bob and carol are members); return its id."""
    file_id = upload(alice, lobby, PDF, "plan.pdf").json()["id"]
    posted = client_for(alice).post(
        f"/api/v1/rooms/{lobby.pk}/messages/", {"body": "the plan", "attachments": [file_id]}, format="json"
    )
    assert posted.status_code == 201
    return file_id


def get(client_for, user, file_id: int, suffix: str = ""):  # type: ignore[no-untyped-def]
    return client_for(user).get(f"/api/v1/files/{file_id}/{suffix}")


# --- Access -----------------------------------------------------------------------------------


def test_member_downloads_an_attached_file(shared, bob, client_for):
    assert get(client_for, bob, shared).status_code == 200


def test_non_member_cannot_download_file(shared, mallory, client_for):
    response = get(client_for, mallory, shared)
    assert response.status_code == 404
    assert response.json() == {"detail": "File not found."}


def test_signed_out_caller_cannot_download_file(shared):
    assert Client().get(f"/api/v1/files/{shared}/").status_code in (401, 403)


def test_access_ends_when_the_member_leaves(shared, bob, lobby, client_for):
    room_services.room_leave(user=bob, room=lobby)
    assert get(client_for, bob, shared).status_code == 404


def test_access_ends_when_the_member_is_kicked(shared, alice, bob, lobby, client_for):
    room_services.member_kick(actor=alice, room=lobby, user_id=bob.pk)
    assert get(client_for, bob, shared).status_code == 404


def test_access_ends_when_the_member_is_banned(shared, alice, bob, lobby, client_for):
    room_services.member_ban(actor=alice, room=lobby, user_id=bob.pk, reason="spam")
    assert get(client_for, bob, shared).status_code == 404


def test_nobody_downloads_the_file_of_a_deleted_message(shared, alice, bob, client_for):
    message = Message.objects.get(attachments__id=shared)
    message_delete(actor=alice, message=message)
    assert get(client_for, bob, shared).status_code == 404
    assert get(client_for, alice, shared).status_code == 404
    # Kept in storage for the retention period; gone from the message's payload.
    assert StoredFile.objects.filter(pk=shared).exists()
    assert client_for(alice).get(f"/api/v1/messages/{message.pk}/").json()["attachments"] == []


def test_an_unattached_upload_is_only_its_uploaders(upload, alice, bob, lobby, client_for):
    file_id = upload(alice, lobby, PDF).json()["id"]
    assert get(client_for, alice, file_id).status_code == 200
    assert get(client_for, bob, file_id).status_code == 404


def test_unknown_file_is_404(alice, client_for):
    assert get(client_for, alice, 987654).status_code == 404
    assert get(client_for, alice, 987654, "thumbnail/").status_code == 404


def test_a_non_image_has_no_thumbnail(shared, bob, client_for):
    assert get(client_for, bob, shared, "thumbnail/").status_code == 404


def test_outsider_cannot_upload_into_a_private_room(mallory, secret, client_for):
    assert upload_file(client_for(mallory), secret.pk, PDF).status_code == 404


# --- Ranges and safe serving ------------------------------------------------------------------


def test_a_range_request_gets_206_with_those_bytes(upload, alice, lobby, client_for):
    data = bytes(range(256)) * 40
    file_id = upload(alice, lobby, data, "video.bin").json()["id"]
    response = client_for(alice).get(f"/api/v1/files/{file_id}/", HTTP_RANGE="bytes=100-199")
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert body_of(response) == data[100:200]
    tail = client_for(alice).get(f"/api/v1/files/{file_id}/", HTTP_RANGE="bytes=-10")
    assert body_of(tail) == data[-10:]
    past = client_for(alice).get(f"/api/v1/files/{file_id}/", HTTP_RANGE=f"bytes={len(data)}-")
    assert past.status_code == 416
    assert past["Content-Range"] == f"bytes */{len(data)}"


@pytest.mark.parametrize(
    ("data", "content_type", "disposition"),
    [
        (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "image/svg+xml", "attachment"),
        (b"<!DOCTYPE html><html><script>alert(1)</script></html>", "text/html", "attachment"),
        (b"just some notes\n", "text/plain", "inline"),
        (PDF, "application/pdf", "inline"),
        (b"MZ\x90\x00\x03\x00\x00\x00" + bytes(100), "application/octet-stream", "attachment"),
    ],
)
def test_markup_is_never_served_inline(upload, alice, lobby, client_for, data, content_type, disposition):
    # Every name claims a harmless image: the bytes decide.
    payload = upload(alice, lobby, data, "picture.png").json()
    assert payload["content_type"] == content_type
    response = get(client_for, alice, payload["id"])
    assert response["Content-Disposition"].startswith(disposition)
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]
    if disposition == "attachment":
        assert response["Content-Type"] == "application/octet-stream"


# --- Images -----------------------------------------------------------------------------------


def test_exif_and_gps_are_removed_and_orientation_applied(upload, alice, lobby, client_for):
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to view
    exif[0x010F] = "PhoneMaker"
    exif.get_ifd(0x8825)[2] = (52.0, 31.0, 12.0)  # GPSLatitude
    exif.get_ifd(0x8825)[1] = "N"
    original = image_bytes((400, 200), exif=exif)
    assert b"PhoneMaker" in original
    payload = upload(alice, lobby, original, "photo.jpg").json()
    # Upright: the 400×200 landscape turned to portrait.
    assert (payload["width"], payload["height"]) == (200, 400)
    stored = body_of(get(client_for, alice, payload["id"]))
    image = Image.open(io.BytesIO(stored))
    assert not image.getexif()
    assert b"PhoneMaker" not in stored and b"GPS" not in stored
    assert image.size == (200, 400)


def test_an_executable_named_png_is_not_an_image(upload, alice, lobby):
    payload = upload(alice, lobby, b"MZ\x90\x00" + bytes(500), "cat.png").json()
    assert payload["content_type"] == "application/octet-stream"
    assert payload["width"] is None


def test_a_corrupt_image_is_stored_as_a_file_without_thumbnail(upload, alice, lobby, client_for):
    broken = image_bytes((300, 300))[:200]
    response = upload(alice, lobby, broken, "broken.jpg")
    assert response.status_code == 201
    payload = response.json()
    assert payload["content_type"] == "application/octet-stream"
    assert payload["thumbnail_url"] is None
    assert body_of(get(client_for, alice, payload["id"])) == broken


def test_a_decompression_bomb_is_refused(upload, alice, lobby, settings):
    settings.IMAGE_MAX_PIXELS = 1000 * 1000
    response = upload(alice, lobby, image_bytes((2000, 2000), image_format="PNG"), "bomb.png")
    assert response.status_code == 400
    assert "too large to process" in str(response.json())
    assert not StoredFile.objects.exists()


def test_an_animated_gif_keeps_its_frames_and_thumbnails_the_first(upload, alice, lobby):
    from files.images import thumbnail

    frames = [Image.new("RGB", (600, 300), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    payload = upload(alice, lobby, out.getvalue(), "party.gif").json()
    assert payload["content_type"] == "image/gif"
    stored = StoredFile.objects.get(pk=payload["id"])
    from files.storage import files_storage

    with files_storage().open(stored.key, "rb") as handle:
        assert Image.open(handle).n_frames == 3
        handle.seek(0)
        data, _ = thumbnail(handle)
    first = Image.open(io.BytesIO(data)).convert("RGB")
    assert first.size == (400, 200)
    red, green, blue = first.getpixel((200, 100))  # type: ignore[misc]
    assert red > 200 and green < 50 and blue < 50


# --- Bad input --------------------------------------------------------------------------------


def test_an_oversize_file_is_refused_with_413(upload, alice, lobby, settings):
    settings.UPLOAD_MAX_BYTES = 1000
    response = upload(alice, lobby, bytes(2000) + b"x", "big.bin")
    assert response.status_code == 413
    assert response.json() == {"detail": "The file is too large: at most 1000 bytes."}
    assert not StoredFile.objects.exists()


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(alice, lobby, client_for, settings):
    settings.UPLOAD_MAX_BYTES = 1000
    client = client_for(alice)
    response = client.generic(
        "POST",
        f"/api/v1/rooms/{lobby.pk}/uploads/",
        b"",
        content_type="multipart/form-data; boundary=xyz",
        CONTENT_LENGTH=str(10 * 1024 * 1024),
    )
    assert response.status_code == 413
    assert "too large" in response.json()["detail"]


def test_the_quota_is_answered_with_413_and_what_is_left(upload, alice, lobby, settings):
    settings.UPLOAD_QUOTA_BYTES = 3000
    assert upload(alice, lobby, b"a" * 2000, "one.txt").status_code == 201
    response = upload(alice, lobby, b"b" * 2000, "two.txt")
    assert response.status_code == 413
    assert "quota" in response.json()["detail"]
    assert StoredFile.objects.count() == 1


def test_a_file_cannot_be_attached_twice(upload, alice, lobby, client_for):
    file_id = upload(alice, lobby, PDF).json()["id"]
    client = client_for(alice)
    assert (
        client.post(f"/api/v1/rooms/{lobby.pk}/messages/", {"attachments": [file_id]}, format="json").status_code == 201
    )
    again = client.post(f"/api/v1/rooms/{lobby.pk}/messages/", {"attachments": [file_id]}, format="json")
    assert again.status_code == 400
    assert "already attached" in str(again.json())


def test_the_same_file_listed_twice_is_refused(upload, alice, lobby, client_for):
    file_id = upload(alice, lobby, PDF).json()["id"]
    response = client_for(alice).post(
        f"/api/v1/rooms/{lobby.pk}/messages/", {"attachments": [file_id, file_id]}, format="json"
    )
    assert response.status_code == 400
    assert Message.objects.count() == 0


def test_someone_elses_upload_cannot_be_attached(upload, alice, bob, lobby, client_for):
    file_id = upload(alice, lobby, PDF).json()["id"]
    response = client_for(bob).post(f"/api/v1/rooms/{lobby.pk}/messages/", {"attachments": [file_id]}, format="json")
    assert response.status_code == 400
    assert StoredFile.objects.get(pk=file_id).message_id is None
    assert Message.objects.count() == 0


def test_an_unknown_file_id_cannot_be_attached(alice, lobby, client_for):
    response = client_for(alice).post(f"/api/v1/rooms/{lobby.pk}/messages/", {"attachments": [424242]}, format="json")
    assert response.status_code == 400
    assert "No upload 424242" in str(response.json())


def test_a_failed_attach_attaches_nothing(upload, alice, lobby, client_for):
    good = upload(alice, lobby, PDF).json()["id"]
    response = client_for(alice).post(
        f"/api/v1/rooms/{lobby.pk}/messages/", {"attachments": [good, 999999]}, format="json"
    )
    assert response.status_code == 400
    assert StoredFile.objects.get(pk=good).message_id is None


def test_no_body_and_no_attachments_is_still_an_empty_message(alice, lobby, client_for):
    response = client_for(alice).post(f"/api/v1/rooms/{lobby.pk}/messages/", {"attachments": []}, format="json")
    assert response.status_code == 400


def test_a_truncated_multipart_body_is_a_clear_400(alice, lobby, client_for):
    body = (
        b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\nhello, this is cut of"
    )
    response = client_for(alice).generic(
        "POST", f"/api/v1/rooms/{lobby.pk}/uploads/", body, content_type="multipart/form-data; boundary=xyz"
    )
    assert 400 <= response.status_code < 500
    assert "application/json" in response["Content-Type"]
    assert not StoredFile.objects.exists()


def test_no_file_field_is_a_clear_400(alice, lobby, client_for):
    response = client_for(alice).post(f"/api/v1/rooms/{lobby.pk}/uploads/", {"other": "x"}, format="multipart")
    assert response.status_code == 400
    assert "file" in response.json()


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\report.pdf", "report.pdf"),
        ("bad\x00name.txt", "badname.txt"),
    ],
)
def test_filenames_are_sanitised_for_storage_and_kept_for_display(upload, alice, lobby, name, shown):
    payload = upload(alice, lobby, b"notes", name).json()
    assert payload["name"] == shown
    stored = StoredFile.objects.get(pk=payload["id"])
    assert "/" not in stored.key.rsplit("/", 1)[1]
    assert ".." not in stored.key and "\x00" not in stored.key


def test_a_300_character_name_is_shortened_but_keeps_its_extension(upload, alice, lobby):
    name = "x" * 296 + ".pdf"
    payload = upload(alice, lobby, PDF, name).json()
    assert payload["name"].endswith(".pdf") and len(payload["name"]) <= 255
    stored = StoredFile.objects.get(pk=payload["id"])
    assert stored.key.endswith(".pdf") and len(stored.key) < 200


def test_a_hundred_uploads_at_once_are_rate_limited(alice, lobby, client_for):
    client = client_for(alice)
    statuses = [upload_file(client, lobby.pk, b"x", f"{n}.txt").status_code for n in range(100)]
    assert statuses.count(201) == 30
    assert statuses.count(429) == 70


def test_attachments_claim_keeps_the_given_order(upload, alice, lobby):
    from messaging.services import message_post

    ids = [upload(alice, lobby, PDF, f"{n}.pdf").json()["id"] for n in range(3)]
    message, _ = message_post(room=lobby, author=alice, body="three files", attachments=list(reversed(ids)))
    assert [stored.pk for stored in message.attachments.order_by("position")] == list(reversed(ids))
    assert attachments_claim(file_ids=[], uploader=alice, room_id=lobby.pk, message_id=message.pk) == []


def test_the_asgi_gate_refuses_a_large_upload_without_reading_its_body(alice, lobby, settings):
    from asgiref.sync import async_to_sync

    from chatproject.asgi import application

    settings.UPLOAD_MAX_BYTES = 1000
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        raise AssertionError("the body was read")

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": f"/api/v1/rooms/{lobby.pk}/uploads/",
        "headers": [(b"content-length", b"50000000"), (b"host", b"127.0.0.1")],
    }
    async_to_sync(application)(scope, receive, send)
    assert sent[0]["status"] == 413
    assert b"too large" in sent[1]["body"]  # type: ignore[operator]
