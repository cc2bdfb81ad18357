"""Settled notifications and sent emails are forgotten after NOTIFICATION_RETENTION_DAYS; pending ones stay."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from messaging.services import message_post
from notifications import tasks
from notifications.models import EmailBatch, Notification
from notifications.services import notifications_prune

pytestmark = pytest.mark.django_db

State = Notification.State


def notification(user: Any, room: Any, author: Any, *, push: str, email: str = State.NONE, age_days: int) -> Any:
    message, _ = message_post(room=room, author=author, body=f"note {push} {email} {age_days}")
    made = Notification.objects.create(
        user=user, room=room, message=message, reason=Notification.Reason.ALL, push_state=push, email_state=email
    )
    Notification.objects.filter(pk=made.pk).update(created_at=timezone.now() - timedelta(days=age_days))
    return made


def test_old_settled_notifications_are_forgotten_and_recent_or_pending_ones_kept(alice, bob, lobby, settings):
    settings.NOTIFICATION_RETENTION_DAYS = 30
    old_sent = notification(bob, lobby, alice, push=State.SENT, age_days=40)
    old_skipped = notification(bob, lobby, alice, push=State.SKIPPED, email=State.SENT, age_days=40)
    old_pending_push = notification(bob, lobby, alice, push=State.PENDING, age_days=40)
    old_pending_email = notification(bob, lobby, alice, push=State.SENT, email=State.PENDING, age_days=40)
    recent = notification(bob, lobby, alice, push=State.SENT, age_days=2)

    assert tasks.notifications_forget.call() == 2

    left = set(Notification.objects.values_list("pk", flat=True))
    assert left == {old_pending_push.pk, old_pending_email.pk, recent.pk}
    assert {old_sent.pk, old_skipped.pk}.isdisjoint(left)


def test_sent_and_failed_emails_go_with_their_notifications_and_unsent_ones_stay(alice, bob, lobby):
    now = timezone.now()
    sent = EmailBatch.objects.create(user=bob, sent_at=now)
    EmailBatch.objects.create(user=bob, failure="550 no such mailbox")  # given up: forgotten too
    unsent = EmailBatch.objects.create(user=bob)
    recent = EmailBatch.objects.create(user=bob, sent_at=now)
    EmailBatch.objects.exclude(pk=recent.pk).update(created_at=now - timedelta(days=40))
    covered = notification(bob, lobby, alice, push=State.SENT, email=State.SENT, age_days=40)
    Notification.objects.filter(pk=covered.pk).update(email_batch=sent)

    assert notifications_prune(before=now - timedelta(days=30)) == 3

    assert set(EmailBatch.objects.values_list("pk", flat=True)) == {unsent.pk, recent.pk}
    assert not Notification.objects.filter(pk=covered.pk).exists()
    assert notifications_prune(before=now - timedelta(days=30)) == 0
