"""Pins: messages a room keeps at hand. A channel's owners and admins pin; in a DM anyone in it does."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from core.errors import Forbidden, Invalid
from messaging.models import Message
from messaging.payloads import message_payload
from messaging.selectors import message_reload, messages_with_details
from rooms.events import Event, event_record
from rooms.models import Room
from rooms.selectors import membership_require

# A pinned list is something to glance at, not a second history.
PINS_MAX = 100


@transaction.atomic
def message_pin(*, actor: User, message: Message, pinned: bool) -> Message:
    """Pin or unpin a message; the room hears it as `message.updated` with `pinned`. Repeats change nothing."""
    membership = membership_require(user=actor, room=message.room_id)
    if not membership.room.is_direct and not membership.can_moderate:
        raise Forbidden("Only the channel's owners and admins may pin or unpin messages.")
    message = Message.objects.select_for_update(of=("self",)).get(pk=message.pk)
    if message.deleted:
        raise Invalid("This message was deleted.")
    if (message.pinned_at is not None) == pinned:
        return message_reload(message.pk)
    if pinned:
        # Counted under the message's lock; two admins pinning the hundredth at once may make 101, harmlessly.
        if Message.objects.filter(room_id=message.room_id, pinned_at__isnull=False).count() >= PINS_MAX:
            raise Invalid(f"A room keeps at most {PINS_MAX} pins: unpin one first.")
        message.pinned_at, message.pinned_by = timezone.now(), actor
    else:
        message.pinned_at, message.pinned_by = None, None
    message.save(update_fields=["pinned_at", "pinned_by"])
    fresh = message_reload(message.pk)
    event_record(
        type=Event.Type.MESSAGE_UPDATED,
        room=fresh.room_id,
        actor_id=actor.pk,
        message_id=fresh.pk,
        payload={"room": fresh.room_id, "message": dict(message_payload(fresh))},
    )
    return fresh


def pinned_messages(*, room: Room) -> list[Message]:
    """Return a room's live pinned messages, newest pin first."""
    return list(
        messages_with_details()
        .filter(room=room, pinned_at__isnull=False, deleted_at__isnull=True)
        .order_by("-pinned_at", "-id")[:PINS_MAX]
    )
