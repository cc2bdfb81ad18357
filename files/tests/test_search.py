"""Search's `has:` filter finds messages by their attachments."""

from __future__ import annotations

import pytest

from files.tests.conftest import image_bytes

pytestmark = pytest.mark.django_db


def _post(client, room, body, attachments=()):  # type: ignore[no-untyped-def]
    response = client.post(
        f"/api/v1/rooms/{room.pk}/messages/", {"body": body, "attachments": list(attachments)}, format="json"
    )
    assert response.status_code == 201, response.content


def _found(response) -> list[str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.content
    return sorted(message["body"] for message in response.json()["results"])


@pytest.fixture
def shared(upload, client_for, alice, lobby):  # type: ignore[no-untyped-def]
    client = client_for(alice)
    picture = upload(alice, lobby, image_bytes((40, 30)), "chart.jpg").json()["id"]
    document = upload(alice, lobby, b"%PDF-1.4 release notes", "notes.pdf").json()["id"]
    _post(client, lobby, "release chart", [picture])
    _post(client, lobby, "release notes", [document])
    _post(client, lobby, "release plain")
    return client


def test_has_file_keeps_only_messages_with_attachments(shared):
    assert _found(shared.get("/api/v1/search/messages/", {"q": "release has:file"})) == [
        "release chart",
        "release notes",
    ]
    assert _found(shared.get("/api/v1/search/messages/", {"q": "release", "has": "file"})) == [
        "release chart",
        "release notes",
    ]


def test_has_image_keeps_only_messages_with_an_image(shared):
    assert _found(shared.get("/api/v1/search/messages/", {"q": "has:image"})) == ["release chart"]


def test_has_with_an_unknown_kind_is_refused_naming_the_filter(shared):
    response = shared.get("/api/v1/search/messages/", {"q": "release has:anything"})

    assert response.status_code == 400
    assert response.json() == {"has": ["Use has:file or has:image (got 'anything')."]}
