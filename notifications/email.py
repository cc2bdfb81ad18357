"""Missed-message emails: gathered per person into batches, each sent by its own job, once.

The gatherer (`missed_emails_gather`, every EMAIL_BATCH_INTERVAL_SECONDS)
takes each person's notifications whose email is due, looks at each again
(read, deleted, edited away, muted meanwhile?) and, in one transaction,
writes an `EmailBatch` with what is still due, marks those notifications
batched, and enqueues the job that sends it. A crash before the commit
leaves them due for the next run; after it, the job exists and will run.

The sending job (`missed_email_send`) builds the email from the messages
as they are then (latest text, grouped by room), sends it, and records
`sent_at`; a second attempt of a sent batch sends nothing. A worker killed
between the SMTP server's acceptance and that record sends it again, with
the same Message-ID, which mail clients show once. An address the server
refuses ends the batch (recorded in `failure`) instead of retrying; a
server that is down or answers a temporary error is retried with backoff.
"""

from __future__ import annotations

import smtplib
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

import jobs
from notifications.models import EmailBatch, Notification
from notifications.notifier import still_due_among
from notifications.services import preferences_of

UNSUBSCRIBE_SALT = "notifications.email-unsubscribe"
TEXT_MAX = 300
GATHER_USERS_MAX = 500


def unsubscribe_token(user_id: int) -> str:
    return signing.dumps({"u": user_id}, salt=UNSUBSCRIBE_SALT, compress=True)


def unsubscribe_user_id(token: str) -> int | None:
    """Return the user id a token was made for, or None if it is not one of ours."""
    try:
        value = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except signing.BadSignature:
        return None
    user_id = value.get("u") if isinstance(value, dict) else None
    return user_id if isinstance(user_id, int) else None


def unsubscribe_url(user_id: int) -> str:
    return f"{settings.SITE_URL}/email/unsubscribe/{unsubscribe_token(user_id)}/"


def batch_for_user(user_id: int, *, now: datetime) -> EmailBatch | None:
    """Gather the person's due emails into one batch and queue its sending; return it (None: nothing due)."""
    with transaction.atomic():
        due = list(
            Notification.objects.select_for_update(of=("self",))
            .filter(user_id=user_id, email_state=Notification.State.PENDING, email_due_at__lte=now)
            .select_related("message__room", "user")
            .order_by("id")
        )
        wanted = preferences_of(user_id).email
        still = still_due_among(due, now=now) if wanted else set()
        keep = [notification for notification in due if notification.pk in still]
        skipped = [notification.pk for notification in due if notification not in keep]
        Notification.objects.filter(pk__in=skipped).update(email_state=Notification.State.SKIPPED)
        if not keep:
            return None
        batch = EmailBatch.objects.create(user_id=user_id)
        Notification.objects.filter(pk__in=[n.pk for n in keep]).update(
            email_state=Notification.State.SENT, email_batch=batch
        )
        missed_email_send.enqueue(batch.pk)
    return batch


@jobs.task(max_attempts=5, retry_delay=timedelta(seconds=10))
def missed_emails_gather() -> int:
    """Batch every person's due missed-message emails; return how many batches were written."""
    now = timezone.now()
    user_ids = list(
        Notification.objects.filter(email_state=Notification.State.PENDING, email_due_at__lte=now)
        .order_by()
        .values_list("user_id", flat=True)
        .distinct()[:GATHER_USERS_MAX]
    )
    return sum(1 for user_id in user_ids if batch_for_user(user_id, now=now) is not None)


jobs.every(timedelta(seconds=settings.EMAIL_BATCH_INTERVAL_SECONDS), missed_emails_gather)


def _room_label(room: Any) -> str:
    return "Direct messages" if room.is_direct else f"#{room.name}"


def missed_email(batch: EmailBatch) -> EmailMultiAlternatives | None:
    """Build the batch's email from its messages as they are now; None if none is left to tell."""
    user = batch.user
    notifications = (
        batch.notifications.select_related("message__room", "message__author")  # type: ignore[attr-defined]
        .filter(message__deleted_at__isnull=True)
        .order_by("room_id", "message_id")
    )
    rooms: dict[int, dict[str, Any]] = defaultdict(dict)
    count = 0
    for notification in notifications:
        message = notification.message
        room = rooms[message.room_id]
        if not room:
            room.update(label=_room_label(message.room), items=[])
        text = message.body if len(message.body) <= TEXT_MAX else message.body[: TEXT_MAX - 1] + "…"
        room["items"].append(
            {
                "author": message.author.display_name or message.author.username,
                "text": text,
                "url": f"{settings.SITE_URL}/rooms/{message.room_id}/?message={message.pk}",
            }
        )
        count += 1
    if not count:
        return None
    subject = f"{count} new message{'s' if count != 1 else ''} while you were away"
    context = {
        "name": user.display_name or user.username,
        "rooms": list(rooms.values()),
        "subject": subject,
        "unsubscribe_url": unsubscribe_url(user.pk),
        "settings_url": f"{settings.SITE_URL}/",
    }
    domain = urlsplit(settings.SITE_URL).hostname or "localhost"
    email = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("notifications/missed_email.txt", context),
        to=[user.email],
        headers={
            "List-Unsubscribe": f"<{context['unsubscribe_url']}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            # Fixed per batch: a copy sent again after a crash is the same message.
            "Message-ID": f"<missed-{batch.pk}.{user.pk}@{domain}>",
            "Auto-Submitted": "auto-generated",
        },
    )
    email.attach_alternative(render_to_string("notifications/missed_email.html", context), "text/html")
    return email


class MailServerError(Exception):
    """The mail server could not take the email now (down, or a temporary refusal)."""


@jobs.task(max_attempts=8, retry_delay=timedelta(seconds=30), retry_delay_max=timedelta(minutes=30))
def missed_email_send(batch_id: int) -> str:
    """Send one missed-messages email, unless it was sent already; return what came of it."""
    batch = EmailBatch.objects.select_related("user").filter(pk=batch_id).first()
    if batch is None:
        return "gone"
    if batch.sent_at is not None or batch.failure:
        return "done before"
    user = batch.user
    email = missed_email(batch) if user.is_active and user.email else None
    if email is None:
        EmailBatch.objects.filter(pk=batch_id).update(failure="nothing left to send")
        return "nothing left"
    try:
        email.send()
    except smtplib.SMTPRecipientsRefused as exc:
        # The address bounced at SMTP time: retrying will not help.
        EmailBatch.objects.filter(pk=batch_id).update(failure=f"address refused: {exc.recipients}"[:300])
        return "refused"
    except (smtplib.SMTPException, OSError) as exc:
        raise MailServerError(f"mail server: {exc.__class__.__name__}: {exc}") from exc
    EmailBatch.objects.filter(pk=batch_id).update(sent_at=timezone.now())
    return "sent"
