"""Moderators remove files (storage, message, log); the sweeps empty storage of orphans and expired files."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ModerationAction
from chatproject.tests.security.admin_forms import staff_client
from core.errors import Forbidden
from files import services
from files.models import StoredFile
from files.storage import files_storage
from files.tasks import files_sweep
from files.tests.conftest import image_bytes, run_jobs
from messaging.models import Message
from messaging.services import message_delete, message_post

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n%%EOF\n"


@pytest.fixture
def posted(upload, alice, lobby):  # type: ignore[no-untyped-def]
    """An image alice posted in lobby, its thumbnail made; return its row."""
    file_id = upload(alice, lobby, image_bytes((640, 480)), "cat.jpg").json()["id"]
    message_post(room=lobby, author=alice, body="look", attachments=[file_id])
    run_jobs()
    stored = StoredFile.objects.get(pk=file_id)
    assert stored.thumbnail_key
    return stored


def test_files_are_listed_in_the_admin_with_uploader_room_size_and_type(posted, lobby, make_user):
    root = make_user("root", is_staff=True, is_superuser=True)
    page = staff_client(root).get("/admin/files/storedfile/")
    assert page.status_code == 200
    text = page.content.decode()
    for expected in ("cat.jpg", "alice", str(lobby), "image/jpeg", "KiB"):
        assert expected in text


def test_moderator_removal_empties_storage_updates_the_message_and_logs_it(posted, make_user, capture_events):
    root = make_user("root", is_staff=True, is_superuser=True)
    storage = files_storage()
    keys = [posted.key, posted.thumbnail_key]
    with capture_events() as events:
        response = staff_client(root).post(
            "/admin/files/storedfile/",
            {"action": "remove_files", "_selected_action": [posted.pk], "reason": "illegal content"},
        )
    assert response.status_code == 302
    assert not StoredFile.objects.filter(pk=posted.pk).exists()
    logged = ModerationAction.objects.get(action=ModerationAction.Kind.FILE_DELETE)
    assert (logged.actor, logged.target_user_id, logged.reason) == (root, posted.uploader_id, "illegal content")
    assert logged.message_id == posted.message_id
    updated = [event for event in events if event.type == "message.updated"]  # type: ignore[attr-defined]
    assert updated and updated[-1].payload["message"]["attachments"] == []  # type: ignore[attr-defined]
    # The bytes go by a durable job, queued with the removal.
    assert all(storage.exists(key) for key in keys)
    run_jobs()
    assert not any(storage.exists(key) for key in keys)


def test_a_plain_member_cannot_remove_a_file(posted, bob):
    with pytest.raises(Forbidden):
        services.file_delete(actor=bob, stored=posted, reason="mine?")
    assert StoredFile.objects.filter(pk=posted.pk).exists()


def test_a_room_admin_can_remove_a_file_in_their_room(posted, carol):
    services.file_delete(actor=carol, stored=posted, reason="off topic", via="api")
    assert not StoredFile.objects.filter(pk=posted.pk).exists()


def test_the_sweep_removes_orphans_older_than_a_day_only(upload, alice, lobby):
    old = upload(alice, lobby, PDF, "old.pdf").json()["id"]
    new = upload(alice, lobby, PDF, "new.pdf").json()["id"]
    StoredFile.objects.filter(pk=old).update(created_at=timezone.now() - timedelta(hours=25))
    old_key = StoredFile.objects.get(pk=old).key
    assert files_sweep.call() == {"orphans": 1, "expired": 0}
    assert list(StoredFile.objects.values_list("pk", flat=True)) == [new]
    run_jobs()
    assert not files_storage().exists(old_key)


def test_the_sweep_removes_deleted_messages_files_after_the_retention(posted, alice, settings):
    settings.FILE_RETENTION_DAYS = 30
    message = Message.objects.get(pk=posted.message_id)
    message_delete(actor=alice, message=message)
    assert files_sweep.call() == {"orphans": 0, "expired": 0}
    Message.objects.filter(pk=message.pk).update(deleted_at=timezone.now() - timedelta(days=31))
    assert files_sweep.call() == {"orphans": 0, "expired": 1}
    run_jobs()
    assert not files_storage().exists(posted.key)


def test_the_sweep_runs_every_hour():
    from jobs.schedule import periodic_jobs

    assert any(periodic.task is files_sweep and periodic.interval == timedelta(hours=1) for periodic in periodic_jobs())


def test_uploads_and_thumbnail_latency_are_in_metrics(upload, alice, lobby, client, settings):
    from prometheus_client import REGISTRY

    before = REGISTRY.get_sample_value("chat_file_upload_bytes_total") or 0.0
    upload(alice, lobby, b"x" * 1234, "a.txt")
    assert REGISTRY.get_sample_value("chat_file_upload_bytes_total") == before + 1234
    upload(alice, lobby, image_bytes((100, 100)), "b.jpg")
    run_jobs()
    settings.DEBUG = True  # /metrics is open in DEBUG
    text = client.get("/metrics").content.decode()
    assert 'chat_file_uploads_total{kind="image"}' in text
    assert "chat_file_thumbnail_latency_seconds_count" in text
