"""The notifications' background jobs: the notifier on a schedule, and the check after each delay."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

import jobs

# The push and email jobs live beside their code; importing them here registers them with the worker.
from notifications import email, push  # noqa: F401
from notifications.models import Notification
from notifications.notifier import notifier_run, still_due_among
from notifications.services import notifications_prune


@jobs.task(max_attempts=10, retry_delay=timedelta(seconds=5), retry_delay_max=timedelta(minutes=5))
def notifier_follow() -> int:
    """Decide who hears of the messages posted since the last run; return how many events were read."""
    return notifier_run()


jobs.every(timedelta(seconds=settings.NOTIFIER_INTERVAL_SECONDS), notifier_follow)


@jobs.task(max_attempts=3)
def notifications_forget() -> int:
    """Delete settled notifications and sent emails older than NOTIFICATION_RETENTION_DAYS; return how many."""
    return notifications_prune(before=timezone.now() - timedelta(days=settings.NOTIFICATION_RETENTION_DAYS))


jobs.every(timedelta(hours=1), notifications_forget)


@jobs.task(atomic=True, max_attempts=10, retry_delay=timedelta(seconds=5))
def message_notifications_check(message_id: int) -> int:
    """The delay is over: look at each pending push for this message again, and send those still due.

    Atomic: the verdicts and the push jobs commit together with this job's
    success, so a second attempt finds them decided and sends nothing twice.
    Returns how many were sent.
    """
    now = timezone.now()
    pending = list(
        Notification.objects.select_for_update(of=("self",))
        .filter(message_id=message_id, push_state=Notification.State.PENDING)
        .select_related("message__room", "message__author")
        .order_by("user_id")
    )
    due = still_due_among(pending, now=now)
    push.message_pushes_enqueue([n for n in pending if n.pk in due])
    Notification.objects.filter(pk__in=due).update(push_state=Notification.State.SENT)
    Notification.objects.filter(pk__in=[n.pk for n in pending if n.pk not in due]).update(
        push_state=Notification.State.SKIPPED
    )
    return len(due)
