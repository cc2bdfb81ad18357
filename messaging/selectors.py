"""Reads of messages: history pages, single messages, edit history and search."""

from __future__ import annotations

from django.db import connection
from django.db.models import Prefetch, Q, QuerySet

from accounts.models import User
from chatproject.errors import NotFound
from messaging.models import Message, MessageEdit, Reaction
from rooms.models import Membership, Room
from rooms.selectors import member_room_ids, membership_require

HISTORY_DEFAULT_LIMIT = 50
HISTORY_MAX_LIMIT = 200


def messages_with_details() -> QuerySet[Message]:
    """Return messages with what `message_payload` reads, in a fixed number of queries."""
    return Message.objects.select_related("author").prefetch_related(
        Prefetch("reactions", queryset=Reaction.objects.order_by("id"))
    )


def message_history(
    *, room: Room, before: int | None = None, after: int | None = None, limit: int = HISTORY_DEFAULT_LIMIT
) -> tuple[list[Message], bool]:
    """Return a page of a room's messages in ascending id order, and whether more lie beyond it.

    With `after` the page starts just after that id and `has_more` says whether
    newer messages follow; otherwise the page ends just before `before` (or at
    the newest message) and `has_more` says whether older ones precede it.
    """
    messages = messages_with_details().filter(room=room)
    if after is not None:
        messages = messages.filter(id__gt=after)
        if before is not None:
            messages = messages.filter(id__lt=before)
        page = list(messages.order_by("id")[: limit + 1])
        return page[:limit], len(page) > limit
    if before is not None:
        messages = messages.filter(id__lt=before)
    page = list(messages.order_by("-id")[: limit + 1])
    has_more = len(page) > limit
    return list(reversed(page[:limit])), has_more


def message_get_for_member(*, user: User, message_id: int) -> tuple[Message, Membership]:
    """Return a message and the caller's membership of its room, or raise NotFound/Forbidden."""
    message = messages_with_details().select_related("room").filter(pk=message_id).first()
    if message is None or message.room.deleted_at is not None:
        raise NotFound("Message not found.")
    try:
        membership = membership_require(user=user, room=message.room)
    except NotFound:
        raise NotFound("Message not found.") from None
    return message, membership


def message_reload(message_id: int) -> Message:
    return messages_with_details().get(pk=message_id)


def edit_history(*, message: Message) -> list[MessageEdit]:
    return list(MessageEdit.objects.filter(message=message).order_by("id"))


def message_search(
    *, user: User, query: str, room_id: int | None = None, before: int | None = None, limit: int = 50
) -> tuple[list[Message], bool]:
    """Return a page of the caller's visible messages matching `query`, newest first.

    Only rooms the caller is a member of are searched: a membership subquery
    guards it, whatever `room_id` says.
    """
    messages = messages_with_details().filter(room_id__in=member_room_ids(user=user), deleted_at__isnull=True)
    if room_id is not None:
        messages = messages.filter(room_id=room_id)
    if before is not None:
        messages = messages.filter(id__lt=before)
    if connection.vendor == "postgresql":
        # Served by the GIN index on to_tsvector('english', body) (migration 0002).
        messages = messages.extra(
            where=["to_tsvector('english'::regconfig, body) @@ websearch_to_tsquery('english'::regconfig, %s)"],
            params=[query],
        )
    else:
        for term in query.split():
            messages = messages.filter(Q(body__icontains=term))
    page = list(messages.order_by("-id")[: limit + 1])
    return page[:limit], len(page) > limit


def message_get_any(*, message_id: int) -> Message:
    """Return any message in a live room, for staff moderation."""
    message = (
        messages_with_details().select_related("room").filter(pk=message_id, room__deleted_at__isnull=True).first()
    )
    if message is None:
        raise NotFound("Message not found.")
    return message
