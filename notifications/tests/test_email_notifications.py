"""Missed-message emails through a real SMTP server on loopback, batched per person."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from messaging.services import message_delete, message_post, read_mark
from notifications.email import missed_email_send, unsubscribe_url
from notifications.models import EmailBatch
from notifications.services import preferences_of
from notifications.tests.conftest import dead_jobs
from rooms import services as room_services

pytestmark = pytest.mark.django_db

PUSH_DELAY = 15
EMAIL_DELAY = 120


def post(room: Any, author: Any, body: str) -> Any:
    message, _ = message_post(room=room, author=author, body=body)
    return message


@pytest.fixture
def dm(alice: Any, bob: Any) -> Any:
    room, _ = room_services.direct_open(creator=alice, user_ids=[bob.pk])
    return room


def gather(worker: Any) -> None:
    from notifications.email import missed_emails_gather

    missed_emails_gather.enqueue()
    worker.drain()


def parts(message: Any) -> dict[str, str]:
    return {part.get_content_type(): part.get_content() for part in message.walk() if not part.is_multipart()}


def test_an_away_person_gets_one_push_and_then_one_email_for_a_dm(
    alice, bob, dm, subscribe, worker, smtp_server
) -> None:
    phone = subscribe(bob)
    message = post(dm, alice, "Can you <b>call</b> me?")
    worker.notice()
    worker.after(PUSH_DELAY + 1)
    assert len(phone.received) == 1

    _later(worker, EMAIL_DELAY - 10)
    assert smtp_server.messages == []  # the email waits longer than the push
    _later(worker, 10)

    [email] = smtp_server.messages
    assert email["To"] == "bob@example.com"
    assert email["Subject"] == "1 new message while you were away"
    assert email["List-Unsubscribe"] == f"<{unsubscribe_url(bob.pk)}>"
    assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    bodies = parts(email)
    link = f"https://chat.example.com/rooms/{dm.pk}/?message={message.pk}"
    assert "Alice: Can you <b>call</b> me?" in bodies["text/plain"]
    assert link in bodies["text/plain"]
    assert "Can you &lt;b&gt;call&lt;/b&gt; me?" in bodies["text/html"]
    assert f'href="{link}"' in bodies["text/html"]

    _later(worker, 3600)
    assert len(smtp_server.messages) == 1


def _later(worker: Any, seconds: float) -> None:
    """Let `seconds` pass for the emails due (their delay counts on the database's clock), then gather and send."""
    from django.db.models import F

    from notifications.models import Notification

    Notification.objects.filter(email_due_at__isnull=False).update(
        email_due_at=F("email_due_at") - timedelta(seconds=seconds)
    )
    worker.clock.advance(seconds=seconds)
    gather(worker)


def test_messages_are_batched_into_one_email_per_person_grouped_by_room(
    alice, bob, carol, dm, lobby, worker, smtp_server
) -> None:
    post(dm, alice, "first")
    post(dm, alice, "second")
    post(lobby, carol, "@bob in the lobby")
    post(lobby, carol, "not for bob")
    worker.notice()
    _later(worker, EMAIL_DELAY)

    [email] = smtp_server.messages
    assert email["Subject"] == "3 new messages while you were away"
    text = parts(email)["text/plain"]
    assert text.index("Direct messages") < text.index("Alice: first") < text.index("Alice: second")
    assert "#Lobby" in text and "Carol: @bob in the lobby" in text
    assert "not for bob" not in text
    assert EmailBatch.objects.count() == 1


def test_someone_who_reads_in_time_gets_no_email(alice, bob, dm, worker, smtp_server) -> None:
    message = post(dm, alice, "seen it?")
    worker.notice()
    read_mark(user=bob, room=dm, message_id=message.pk)
    _later(worker, EMAIL_DELAY)
    assert smtp_server.messages == []


def test_a_deleted_message_is_not_emailed(alice, bob, dm, worker, smtp_server) -> None:
    message = post(dm, alice, "oops")
    worker.notice()
    message_delete(actor=alice, message=message)
    _later(worker, EMAIL_DELAY)
    assert smtp_server.messages == []


def test_email_off_sends_no_email(alice, bob, dm, worker, smtp_server, client_for) -> None:
    client_for(bob).patch("/api/v1/users/me/preferences/", {"email": False}, format="json")
    post(dm, alice, "hello")
    worker.notice()
    _later(worker, EMAIL_DELAY)
    assert smtp_server.messages == []


def test_a_mail_server_that_is_down_is_retried_and_nothing_is_sent_twice(alice, bob, dm, worker, smtp_server) -> None:
    smtp_server.stop()
    post(dm, alice, "when you are back")
    worker.notice()
    _later(worker, EMAIL_DELAY)
    assert EmailBatch.objects.get().sent_at is None
    smtp_server.start()
    worker.after(3600)
    assert len(smtp_server.messages) == 1
    worker.after(3600)
    assert len(smtp_server.messages) == 1
    assert dead_jobs() == []


def test_a_batch_sent_already_is_not_sent_again(alice, bob, dm, worker, smtp_server) -> None:
    post(dm, alice, "once only")
    worker.notice()
    _later(worker, EMAIL_DELAY)
    batch = EmailBatch.objects.get()
    assert missed_email_send.call(batch.pk) == "done before"  # as a second attempt would
    assert len(smtp_server.messages) == 1


def test_an_address_refused_at_smtp_time_ends_the_batch(alice, make_user, worker, smtp_server) -> None:
    bouncer = make_user("bouncer")
    room, _ = room_services.direct_open(creator=alice, user_ids=[bouncer.pk])
    post(room, alice, "hello?")
    worker.notice()
    _later(worker, EMAIL_DELAY)
    assert smtp_server.messages == []
    assert "refused" in EmailBatch.objects.get().failure
    assert dead_jobs() == []


def test_one_click_unsubscribe_turns_emails_off(bob, client) -> None:
    url = unsubscribe_url(bob.pk).removeprefix("http://localhost:8000")
    assert client.get(url).status_code == 200
    assert preferences_of(bob.pk).email is True  # a link scanner's GET changes nothing
    response = client.post(url, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    assert preferences_of(bob.pk).email is False


def test_a_forged_unsubscribe_link_is_refused(bob, client) -> None:
    assert client.post("/email/unsubscribe/not-a-token/").status_code == 404
    assert preferences_of(bob.pk).email is True
