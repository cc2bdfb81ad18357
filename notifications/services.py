"""Changing notification preferences: one function per action, for the REST views and the admin alike."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import transaction

from core.errors import Invalid
from notifications.models import EmailBatch, Notification, Preferences
from rooms.models import Membership, NotifyLevel, Room
from rooms.selectors import membership_require

if TYPE_CHECKING:
    from accounts.models import User

EMAIL_DELAY_MAX_SECONDS = 7 * 24 * 3600
PREFERENCE_FIELDS = ("push", "email", "email_delay_seconds", "dnd_until", "share_read_receipts", "timezone")


def preferences_of(user_id: int) -> Preferences:
    """Return the user's preferences: their row, or an unsaved one with the defaults."""
    return Preferences.objects.filter(user_id=user_id).first() or Preferences(user_id=user_id)


def _timezone_check(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise Invalid({"timezone": "Not a known time zone (an IANA name such as Europe/Paris)."}) from exc


def preferences_update(*, user: User, changes: dict[str, Any]) -> Preferences:
    """Change some of the user's preferences (only the keys given); return them all."""
    unknown = set(changes) - set(PREFERENCE_FIELDS)
    if unknown:
        raise Invalid({name: "Unknown preference." for name in sorted(unknown)})
    if "timezone" in changes:
        _timezone_check(changes["timezone"])
    delay = changes.get("email_delay_seconds")
    if delay is not None and not 0 <= delay <= EMAIL_DELAY_MAX_SECONDS:
        raise Invalid({"email_delay_seconds": f"Between 0 and {EMAIL_DELAY_MAX_SECONDS}."})
    with transaction.atomic():
        preferences, _ = Preferences.objects.select_for_update().get_or_create(user_id=user.pk)
        for name, value in changes.items():
            setattr(preferences, name, value)
        preferences.save()
    return preferences


def room_notifications_set(*, user: User, room: Room | int, changes: dict[str, Any]) -> Membership:
    """Set the member's notification `level` and/or `muted_until` (None unmutes) for one room.

    Only the keys given change. Returns the membership, with its room.
    """
    unknown = set(changes) - {"level", "muted_until"}
    if unknown:
        raise Invalid({name: "Unknown setting." for name in sorted(unknown)})
    level = changes.get("level")
    if level is not None and level not in NotifyLevel.values:
        raise Invalid({"level": f"One of {', '.join(NotifyLevel.values)}."})
    with transaction.atomic():
        membership = membership_require(user=user, room=room)
        fields = []
        if level is not None:
            membership.notify_level = level
            fields.append("notify_level")
        if "muted_until" in changes:
            membership.muted_until = changes["muted_until"]
            fields.append("muted_until")
        if fields:
            membership.save(update_fields=fields)
    return membership


# Rows deleted per statement: a prune never holds a long lock on a busy table.
PRUNE_BATCH = 1000


def notifications_prune(*, before: datetime, batches: int = 100) -> int:
    """Forget settled notifications and sent (or given-up) emails created before `before`; return how many rows.

    Pending ones stay whatever their age: their check or email is still to
    run. Bounded to `batches` statements of PRUNE_BATCH rows a run; the
    next run goes on. Idempotent.
    """
    pending = Notification.State.PENDING
    deleted = 0
    for _ in range(batches):
        ids = list(
            Notification.objects.filter(created_at__lt=before)
            .exclude(push_state=pending)
            .exclude(email_state=pending)
            .values_list("pk", flat=True)[:PRUNE_BATCH]
        )
        if not ids:
            break
        deleted += Notification.objects.filter(pk__in=ids).delete()[0]
    batch_ids = list(
        EmailBatch.objects.filter(created_at__lt=before, notifications__isnull=True)
        .exclude(sent_at__isnull=True, failure="")
        .values_list("pk", flat=True)[: PRUNE_BATCH * batches]
    )
    deleted += EmailBatch.objects.filter(pk__in=batch_ids).delete()[0]
    return deleted
