"""Uploads from the web page: a session cookie and a CSRF header instead of a bearer token."""

from __future__ import annotations

import io

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def signed_in_page(user: object) -> tuple[Client, str]:
    """A browser-like client signed in with a session, and the CSRF token its page would send."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)  # type: ignore[arg-type]
    client.get("/")  # the chat page sets the CSRF cookie
    return client, client.cookies["csrftoken"].value


def test_page_uploads_a_file_with_its_session_and_csrf_header(alice, lobby):
    client, token = signed_in_page(alice)
    handle = io.BytesIO(PDF)
    handle.name = "report.pdf"
    response = client.post(f"/api/v1/rooms/{lobby.pk}/uploads/", {"file": handle}, headers={"X-CSRFToken": token})
    assert response.status_code == 201, response.content
    assert response.json()["content_type"] == "application/pdf"


def test_page_upload_without_the_csrf_header_is_refused(alice, lobby):
    client, _ = signed_in_page(alice)
    handle = io.BytesIO(PDF)
    handle.name = "report.pdf"
    response = client.post(f"/api/v1/rooms/{lobby.pk}/uploads/", {"file": handle})
    assert response.status_code == 403


def test_page_upload_into_a_private_room_of_others_is_404(mallory, secret):
    client, token = signed_in_page(mallory)
    handle = io.BytesIO(PDF)
    handle.name = "report.pdf"
    response = client.post(f"/api/v1/rooms/{secret.pk}/uploads/", {"file": handle}, headers={"X-CSRFToken": token})
    assert response.status_code == 404
