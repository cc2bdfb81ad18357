"""Files on an S3-compatible object store: moto's server, started by the tests on loopback, over real HTTP.

Uploads land in the bucket, downloads redirect to a URL signed for at most
five minutes that the store itself answers, thumbnails are made from the
bucket, and removal empties it.
"""

from __future__ import annotations

import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from files.models import StoredFile
from files.tests.conftest import image_bytes, run_jobs
from messaging.services import message_delete, message_post

pytestmark = pytest.mark.django_db

BUCKET = "chat-files"
KEYS = {"access_key": "test-access-key", "secret_key": "test-secret-key"}
PDF = b"%PDF-1.4\n%%EOF\n"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        yield endpoint
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_endpoint: str, settings: Any) -> Any:
    """Point the "files" storage at a fresh bucket on the moto server; return a boto3 client for it."""
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id=KEYS["access_key"],
        aws_secret_access_key=KEYS["secret_key"],
    )
    client.create_bucket(Bucket=BUCKET)
    settings.S3_BUCKET = BUCKET
    settings.STORAGES = {
        **settings.STORAGES,
        "files": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET,
                "endpoint_url": s3_endpoint,
                "region_name": "us-east-1",
                "querystring_auth": True,
                "querystring_expire": 300,
                "default_acl": None,
                "file_overwrite": False,
                "addressing_style": "path",
                "signature_version": "s3v4",
                **KEYS,
            },
        },
    }
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def keys_in(client: Any) -> set[str]:
    return {item["Key"] for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def fetch(url: str) -> tuple[bytes, dict[str, str]]:
    """GET a URL of the store; return the body and the headers, their names lower-cased."""
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (the loopback moto server)
        return response.read(), {name.lower(): value for name, value in response.headers.items()}


def test_an_upload_lands_in_the_bucket(bucket, upload, alice, lobby):
    payload = upload(alice, lobby, PDF, "plan.pdf").json()
    stored = StoredFile.objects.get(pk=payload["id"])
    assert keys_in(bucket) == {stored.key}
    assert bucket.get_object(Bucket=BUCKET, Key=stored.key)["Body"].read() == PDF


def test_a_download_redirects_to_a_short_lived_signed_url_the_store_answers(
    bucket, upload, alice, bob, lobby, client_for
):
    file_id = upload(alice, lobby, PDF, "plan.pdf").json()["id"]
    message_post(room=lobby, author=alice, body="plan", attachments=[file_id])
    response = client_for(bob).get(f"/api/v1/files/{file_id}/")
    assert response.status_code == 302
    assert response["X-Content-Type-Options"] == "nosniff"
    location = response["Location"]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    assert int(query["X-Amz-Expires"][0]) <= 300
    data, headers = fetch(location)
    assert data == PDF
    assert headers["content-type"] == "application/pdf"
    assert headers["content-disposition"].startswith("inline")


def test_a_download_from_the_store_of_markup_is_an_attachment(bucket, upload, alice, lobby, client_for):
    file_id = upload(alice, lobby, b"<svg xmlns='http://www.w3.org/2000/svg'/>", "logo.svg").json()["id"]
    location = client_for(alice).get(f"/api/v1/files/{file_id}/")["Location"]
    _, headers = fetch(location)
    assert headers["content-disposition"].startswith("attachment")
    assert headers["content-type"] == "application/octet-stream"


def test_outsiders_get_no_signed_url(bucket, upload, alice, mallory, lobby, client_for):
    file_id = upload(alice, lobby, PDF).json()["id"]
    message_post(room=lobby, author=alice, body="plan", attachments=[file_id])
    response = client_for(mallory).get(f"/api/v1/files/{file_id}/")
    assert response.status_code == 404
    assert "Location" not in response


def test_thumbnails_are_made_from_the_bucket_and_removal_empties_it(bucket, upload, alice, lobby, client_for):
    file_id = upload(alice, lobby, image_bytes((1200, 800)), "photo.jpg").json()["id"]
    message, _ = message_post(room=lobby, author=alice, body="photo", attachments=[file_id])
    run_jobs()
    stored = StoredFile.objects.get(pk=file_id)
    assert keys_in(bucket) == {stored.key, stored.thumbnail_key}
    thumbnail = client_for(alice).get(f"/api/v1/files/{file_id}/thumbnail/")
    assert thumbnail.status_code == 302
    data, headers = fetch(thumbnail["Location"])
    assert headers["content-type"] == "image/webp" and data[:4] == b"RIFF"
    message_delete(actor=alice, message=message)
    from files.services import file_delete

    file_delete(actor=alice, stored=stored, reason="cleanup", via="api")
    run_jobs()
    assert keys_in(bucket) == set()
