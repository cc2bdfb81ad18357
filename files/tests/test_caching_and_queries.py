"""Thumbnails a browser may keep briefly, revalidation that is still checked, and the queries each read costs."""

from __future__ import annotations

import pytest

from files.models import StoredFile
from files.serving import SMALL_FILE_BYTES, THUMBNAIL_CACHE_CONTROL
from files.tests.conftest import body_of, image_bytes, run_jobs
from messaging.models import Message
from messaging.services import message_delete
from rooms import services as room_services

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n%%EOF\n"


@pytest.fixture
def photo(upload, alice, lobby, client_for):  # type: ignore[no-untyped-def]
    """An image alice posted in lobby, its thumbnail made; return its id."""
    file_id = upload(alice, lobby, image_bytes((1600, 1200)), "photo.jpg").json()["id"]
    posted = client_for(alice).post(f"/api/v1/rooms/{lobby.pk}/messages/", {"attachments": [file_id]}, format="json")
    assert posted.status_code == 201
    run_jobs()
    assert StoredFile.objects.get(pk=file_id).thumbnail_key
    return file_id


def test_a_thumbnail_may_be_kept_by_the_browser_for_a_few_minutes_only(photo, bob, client_for):
    response = client_for(bob).get(f"/api/v1/files/{photo}/thumbnail/")
    assert response.status_code == 200
    assert response["Cache-Control"] == THUMBNAIL_CACHE_CONTROL == "private, max-age=300"
    assert response["ETag"].startswith('"')


def test_a_download_is_asked_for_again_every_time(photo, bob, client_for):
    response = client_for(bob).get(f"/api/v1/files/{photo}/")
    assert response["Cache-Control"] == "private, no-cache"
    assert response["ETag"]


def test_a_current_copy_is_answered_304_without_the_bytes(photo, bob, client_for):
    for path in (f"/api/v1/files/{photo}/thumbnail/", f"/api/v1/files/{photo}/"):
        first = client_for(bob).get(path)
        body_of(first)
        again = client_for(bob).get(path, HTTP_IF_NONE_MATCH=first["ETag"])
        assert again.status_code == 304
        assert again["ETag"] == first["ETag"]
        assert again["X-Content-Type-Options"] == "nosniff"
        assert body_of(again) == b""


def test_a_stale_or_foreign_etag_gets_the_bytes(photo, bob, client_for):
    response = client_for(bob).get(f"/api/v1/files/{photo}/thumbnail/", HTTP_IF_NONE_MATCH='"not-this-one"')
    assert response.status_code == 200
    assert body_of(response)[:4] == b"RIFF"


def test_the_thumbnail_and_the_file_have_different_etags(photo, bob, client_for):
    thumbnail = client_for(bob).get(f"/api/v1/files/{photo}/thumbnail/")
    download = client_for(bob).get(f"/api/v1/files/{photo}/")
    assert thumbnail["ETag"] != download["ETag"]


def test_revalidating_after_being_kicked_is_refused(photo, alice, bob, lobby, client_for):
    etag = client_for(bob).get(f"/api/v1/files/{photo}/thumbnail/")["ETag"]
    room_services.member_kick(actor=alice, room=lobby, user_id=bob.pk)
    for path in (f"/api/v1/files/{photo}/thumbnail/", f"/api/v1/files/{photo}/"):
        assert client_for(bob).get(path, HTTP_IF_NONE_MATCH=etag).status_code == 404


def test_revalidating_a_deleted_messages_thumbnail_is_refused(photo, alice, bob, client_for):
    etag = client_for(bob).get(f"/api/v1/files/{photo}/thumbnail/")["ETag"]
    message_delete(actor=alice, message=Message.objects.get(attachments__id=photo))
    assert client_for(bob).get(f"/api/v1/files/{photo}/thumbnail/", HTTP_IF_NONE_MATCH=etag).status_code == 404


def test_an_outsider_with_a_guessed_etag_gets_404(photo, mallory, client_for):
    response = client_for(mallory).get(f"/api/v1/files/{photo}/thumbnail/", HTTP_IF_NONE_MATCH="*")
    assert response.status_code == 404


# --- Queries: a token check, then the file with its access check in one -------------------


def test_a_thumbnail_costs_two_queries(photo, bob, client_for, django_assert_num_queries):
    client = client_for(bob)
    with django_assert_num_queries(2):  # the token's user (with its sign-in), the file with the access check
        response = client.get(f"/api/v1/files/{photo}/thumbnail/")
    assert response.status_code == 200


def test_a_revalidated_thumbnail_costs_the_same_two_queries(photo, bob, client_for, django_assert_num_queries):
    client = client_for(bob)
    etag = client.get(f"/api/v1/files/{photo}/thumbnail/")["ETag"]
    with django_assert_num_queries(2):
        assert client.get(f"/api/v1/files/{photo}/thumbnail/", HTTP_IF_NONE_MATCH=etag).status_code == 304


def test_a_download_costs_two_queries(photo, bob, client_for, django_assert_num_queries):
    client = client_for(bob)
    with django_assert_num_queries(2):
        response = client.get(f"/api/v1/files/{photo}/", HTTP_RANGE="bytes=0-9")
    assert response.status_code == 206


def test_a_refused_download_costs_two_queries(photo, mallory, client_for, django_assert_num_queries):
    client = client_for(mallory)
    with django_assert_num_queries(2):
        assert client.get(f"/api/v1/files/{photo}/").status_code == 404


def test_an_unattached_upload_costs_two_queries_for_its_uploader(
    upload, alice, lobby, client_for, django_assert_num_queries
):
    file_id = upload(alice, lobby, PDF).json()["id"]
    client = client_for(alice)
    with django_assert_num_queries(2):
        assert client.get(f"/api/v1/files/{file_id}/").status_code == 200


def test_a_small_file_is_sent_whole_and_a_large_one_streams(upload, alice, lobby, client_for):
    small_id = upload(alice, lobby, PDF).json()["id"]
    large = PDF + b"%" * (SMALL_FILE_BYTES + 1)
    large_id = upload(alice, lobby, large, "large.pdf").json()["id"]
    small = client_for(alice).get(f"/api/v1/files/{small_id}/")
    streamed = client_for(alice).get(f"/api/v1/files/{large_id}/")
    assert not small.streaming and small.content == PDF
    assert streamed.streaming and body_of(streamed) == large
    assert small["ETag"] and streamed["ETag"]
