"""The wire shape of notification preferences."""

from __future__ import annotations

from typing import TypedDict

from core.wire import isoformat
from notifications.models import Preferences
from rooms.models import Membership, default_notify_level


class PreferencesPayload(TypedDict):
    push: bool
    email: bool
    email_delay_seconds: int
    dnd_until: str | None
    share_read_receipts: bool
    timezone: str


class RoomNotificationsPayload(TypedDict):
    room: int
    level: str
    muted_until: str | None


def preferences_payload(preferences: Preferences) -> PreferencesPayload:
    return {
        "push": preferences.push,
        "email": preferences.email,
        "email_delay_seconds": preferences.email_delay_seconds,
        "dnd_until": isoformat(preferences.dnd_until),
        "share_read_receipts": preferences.share_read_receipts,
        "timezone": preferences.timezone,
    }


def room_notifications_payload(membership: Membership) -> RoomNotificationsPayload:
    return {
        "room": membership.room_id,
        "level": membership.notify_level or default_notify_level(membership.room.kind),
        "muted_until": isoformat(membership.muted_until),
    }
