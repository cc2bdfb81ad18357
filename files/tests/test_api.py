"""Uploading, attaching and downloading files over the API, on the local folder."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from files.models import StoredFile
from files.tests.conftest import body_of, image_bytes, run_jobs, upload_file

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def test_member_uploads_a_file_and_gets_it_back(upload, alice, lobby, client_for):
    response = upload(alice, lobby, PDF, "report.pdf")
    assert response.status_code == 201, response.content
    payload = response.json()
    assert payload["name"] == "report.pdf"
    assert payload["content_type"] == "application/pdf"
    assert payload["size"] == len(PDF)
    assert payload["url"] == f"/api/v1/files/{payload['id']}/"
    assert payload["thumbnail_url"] is None and payload["width"] is None
    download = client_for(alice).get(payload["url"])
    assert download.status_code == 200
    assert body_of(download) == PDF
    assert download["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in download["Content-Security-Policy"]


def test_attached_file_shows_on_the_message_and_members_download_it(upload, alice, bob, lobby, client_for):
    file_id = upload(alice, lobby, PDF, "report.pdf").json()["id"]
    posted = client_for(alice).post(
        f"/api/v1/rooms/{lobby.pk}/messages/", {"body": "", "attachments": [file_id]}, format="json"
    )
    assert posted.status_code == 201, posted.content
    message = posted.json()
    assert message["body"] == ""
    assert [item["id"] for item in message["attachments"]] == [file_id]
    history = client_for(bob).get(f"/api/v1/rooms/{lobby.pk}/messages/").json()["results"]
    assert history[-1]["attachments"][0]["name"] == "report.pdf"
    assert body_of(client_for(bob).get(f"/api/v1/files/{file_id}/")) == PDF


def test_image_gets_a_thumbnail_from_the_job_queue(upload, alice, bob, lobby, client_for):
    response = upload(alice, lobby, image_bytes((1600, 1200)), "photo.jpg")
    payload = response.json()
    assert payload["content_type"] == "image/jpeg"
    assert (payload["width"], payload["height"]) == (1600, 1200)
    assert payload["thumbnail_url"] is None
    client_for(alice).post(f"/api/v1/rooms/{lobby.pk}/messages/", {"attachments": [payload["id"]]}, format="json")
    assert run_jobs() >= 1
    stored = StoredFile.objects.get(pk=payload["id"])
    assert stored.thumbnail_key
    thumbnail = client_for(bob).get(f"/api/v1/files/{payload['id']}/thumbnail/")
    assert thumbnail.status_code == 200
    image = Image.open(io.BytesIO(body_of(thumbnail)))
    assert image.format == "WEBP" and max(image.size) <= 400


def test_outsider_gets_404_for_a_file(upload, alice, mallory, lobby, client_for):
    file_id = upload(alice, lobby, PDF, "report.pdf").json()["id"]
    client_for(alice).post(f"/api/v1/rooms/{lobby.pk}/messages/", {"attachments": [file_id]}, format="json")
    assert client_for(mallory).get(f"/api/v1/files/{file_id}/").status_code == 404


def test_upload_of_another_room_cannot_be_attached(upload, alice, lobby, secret, client_for):
    file_id = upload(alice, secret, PDF).json()["id"]
    response = client_for(alice).post(f"/api/v1/rooms/{lobby.pk}/messages/", {"attachments": [file_id]}, format="json")
    assert response.status_code == 400
    assert "another room" in str(response.json())


def test_empty_file_is_refused(client_for, alice, lobby):
    response = upload_file(client_for(alice), lobby.pk, b"", "empty.txt")
    assert response.status_code == 400
