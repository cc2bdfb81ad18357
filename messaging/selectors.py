"""Reads of messages: history pages, single messages, edit history and search."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.models import Count, Exists, F, IntegerField, OuterRef, Prefetch, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.db.models.lookups import LessThanOrEqual

from accounts.models import User
from core.errors import NotFound
from files.models import StoredFile
from messaging.models import Message, MessageEdit, Reaction
from messaging.search import SearchFilters
from messaging.threads import in_room_history
from rooms.models import Membership, Room
from rooms.selectors import member_room_ids, membership_require

HISTORY_DEFAULT_LIMIT = 50


def messages_with_details() -> QuerySet[Message]:
    """Return messages with what `message_payload` reads, in a fixed number of queries."""
    return Message.objects.select_related("author").prefetch_related(
        Prefetch("reactions", queryset=Reaction.objects.order_by("id")),
        Prefetch("mentions", queryset=User.objects.only("id")),
        Prefetch("attachments", queryset=StoredFile.objects.order_by("position")),
    )


def message_history(
    *, room: Room, before: int | None = None, after: int | None = None, limit: int = HISTORY_DEFAULT_LIMIT
) -> tuple[list[Message], bool]:
    """Return a page of a room's messages in ascending id order, and whether more lie beyond it.

    With `after` the page starts just after that id and `has_more` says whether
    newer messages follow; otherwise the page ends just before `before` (or at
    the newest message) and `has_more` says whether older ones precede it.
    """
    # Replies live in their threads; only broadcast ones are also in the room's history.
    messages = messages_with_details().filter(in_room_history(), room=room)
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


def message_history_around(
    *, room: Room, message_id: int, limit: int = HISTORY_DEFAULT_LIMIT
) -> tuple[list[Message], bool, bool]:
    """Return the page of a room's history centred on a message, whether older and whether newer ones lie beyond.

    A reply that is not in the room's history is shown at its root. Raises
    NotFound when the message is not in this room.
    """
    row = Message.objects.filter(pk=message_id, room=room).values("parent_id", "broadcast").first()
    if row is None:
        raise NotFound("Message not found in this room.")
    centre = row["parent_id"] if row["parent_id"] is not None and not row["broadcast"] else message_id
    listed = messages_with_details().filter(in_room_history(), room=room)
    older = list(listed.filter(id__lt=centre).order_by("-id")[: limit + 1])
    newer = list(listed.filter(id__gte=centre).order_by("id")[: limit + 1])
    # Half the page before the message; where one side runs short, the other fills the page.
    take_older = min(len(older), max((limit - 1) // 2, limit - len(newer)))
    take_newer = min(len(newer), limit - take_older)
    page = list(reversed(older[:take_older])) + newer[:take_newer]
    return page, len(older) > take_older, len(newer) > take_newer


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


# Search on PostgreSQL looks for matches newest first, in windows of ids below
# the newest (or `before`): a page of common words is found in the first window
# without reading every match, and a rare word costs little in any window.
SEARCH_WINDOWS = (4096, 32768)


def message_search(
    *,
    user: User,
    query: str,
    room_id: int | None = None,
    before: int | None = None,
    limit: int = 50,
    filters: SearchFilters | None = None,
) -> tuple[list[Message], bool]:
    """Return a page of the caller's visible messages matching `query` and `filters`, newest first.

    Only rooms the caller is a member of are searched: a membership subquery
    guards it, whatever `room_id` or the filters say. With filters, `query`
    may be empty: every message the filters keep is found.
    """
    messages = messages_with_details().filter(room_id__in=member_room_ids(user=user), deleted_at__isnull=True)
    if room_id is not None:
        messages = messages.filter(room_id=room_id)
    if filters is not None:
        if filters.room_ids:
            messages = messages.filter(room_id__in=filters.room_ids)
        if filters.author_id is not None:
            messages = messages.filter(author_id=filters.author_id)
        if filters.since is not None:
            messages = messages.filter(created_at__gte=filters.since)
        if filters.until is not None:
            messages = messages.filter(created_at__lt=filters.until)
        if filters.has is not None:
            attached = StoredFile.objects.filter(message=OuterRef("pk"))
            if filters.has == "image":
                attached = attached.filter(content_type__startswith="image/")
            messages = messages.filter(Exists(attached))
    if before is not None:
        messages = messages.filter(id__lt=before)
    if not query:
        page = list(messages.order_by("-id")[: limit + 1])
    elif connection.vendor == "postgresql":
        # Served by the GIN index on to_tsvector('english', body) (migration 0002).
        matches = messages.extra(
            where=["to_tsvector('english'::regconfig, body) @@ websearch_to_tsquery('english'::regconfig, %s)"],
            params=[query],
        )
        newest = _newest_match_ids(matches, before=before, count=limit + 1)
        page = list(messages_with_details().filter(id__in=newest).order_by("-id")[: limit + 1])
    else:
        for term in query.split():
            messages = messages.filter(Q(body__icontains=term))
        page = list(messages.order_by("-id")[: limit + 1])
    return page[:limit], len(page) > limit


def _newest_match_ids(matches: QuerySet[Message], *, before: int | None, count: int) -> QuerySet[Message, Any]:
    """Return a subquery of the ids of the newest `count` matches, searched window by window.

    Sorting every match of a common word to keep 51 costs as many heap reads
    as there are matches (tens of thousands at a million messages). Instead
    the UNION ALL asks the newest SEARCH_WINDOWS[0] ids first, then the next
    window, then everything older; PostgreSQL runs a branch only while the
    LIMIT still wants rows, so a common word stops in the first window, where
    the window's id range (an index range on the primary key) is ANDed with
    the GIN index. The last branch compares `id + 0` on purpose: it is left to
    the GIN index alone, as ANDing a range of a million ids would cost more
    than reading the few matches a word that rare has. Results rely on the
    Append running its branches in order, which PostgreSQL does for branches
    that carry a LIMIT (they cannot run as parallel partial plans);
    test_history_indexes pages through matches placed in every window.
    """
    top: Any = before - 1 if before is not None else Subquery(Message.objects.order_by("-id").values("id")[:1])
    branches = []
    upper = 0
    for size in SEARCH_WINDOWS:
        window = matches.filter(id__gt=top - size)
        if upper:
            window = window.filter(id__lte=top - upper)
        branches.append(window.order_by("-id").values("id")[:count])
        upper = size
    # A lookup expression rather than .alias(): the alias is lost when the union is used as a subquery.
    older = matches.filter(LessThanOrEqual(F("id") + 0, top - upper))
    branches.append(older.order_by("-id").values("id")[:count])
    return branches[0].union(*branches[1:], all=True)[:count]


def message_get_any(*, message_id: int) -> Message:
    """Return any message in a live room, for staff moderation."""
    message = (
        messages_with_details().select_related("room").filter(pk=message_id, room__deleted_at__isnull=True).first()
    )
    if message is None:
        raise NotFound("Message not found.")
    return message


# --- Room summaries (registered with rooms.selectors) -------------------------------------


class RoomMessageCounts:
    """The message side of a room summary: its newest message, and a reader's unread and mention counts."""

    def annotate(self, rooms: QuerySet[Room], user: User | None) -> QuerySet[Room]:
        # Thread replies are counted in their threads (messaging.threads), not in the room.
        listed = Message.objects.filter(in_room_history())
        last_message_id = listed.filter(room=OuterRef("pk")).order_by("-id").values("id")[:1]
        rooms = rooms.annotate(last_message_id=Subquery(last_message_id))
        if user is None:
            return rooms
        unread = listed.filter(
            room=OuterRef("pk"), id__gt=OuterRef("mine__last_read_message_id"), deleted_at__isnull=True
        ).exclude(author=user)
        # Unread messages that @mention the user: the sidebar's mention badge.
        mentions = unread.filter(mentions=user)
        return rooms.annotate(
            unread_count=Coalesce(Subquery(_count_per_room(unread), output_field=IntegerField()), Value(0)),
            mention_count=Coalesce(Subquery(_count_per_room(mentions), output_field=IntegerField()), Value(0)),
        )

    def newest_message_id(self, room_id: int) -> int:
        listed = Message.objects.filter(in_room_history(), room_id=room_id)
        return listed.order_by("-id").values_list("id", flat=True).first() or 0


def _count_per_room(messages: QuerySet[Message]) -> QuerySet[Message, Any]:
    return messages.order_by().values("room").annotate(n=Count("id")).values("n")
