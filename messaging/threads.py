"""Threads: replies filed under their root, the root's summary, following and per-thread read positions.

A reply's `parent` is always the thread's root (a reply to a reply is filed
under that reply's root). The root carries the thread's summary
(`reply_count`, `last_reply_id`, `last_reply_at`, `last_replier_ids`), which
the reply's own transaction updates under a lock on the root row, so it never
drifts from a recount. A room's history and unread counts leave out replies
unless they were `broadcast`; each thread has its own read position per user
(`ThreadState`), which only moves forward.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import BigIntegerField, Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from accounts.models import User
from core.errors import Invalid, NotFound
from core.wire import isoformat
from messaging.models import Message, ThreadState
from rooms.events import Event, event_record
from rooms.selectors import membership_require

# How many repliers' faces a root shows.
THREAD_FACES = 3
THREAD_PAGE_DEFAULT = 50


def in_room_history() -> Q:
    """What a room's history and unread counts list: top-level messages and broadcast replies."""
    return Q(parent__isnull=True) | Q(broadcast=True)


# --- Filing replies (called inside messaging.services' transactions) ----------------------


def thread_root_lock(*, parent_id: int, room_id: int) -> Message:
    """Return the root a reply to `parent_id` is filed under, locked; raise Invalid with the reason if none.

    The lock serialises the replies of one thread, so each sees the count the
    one before it left.
    """
    parent = Message.objects.filter(pk=parent_id).values("room_id", "parent_id").first()
    if parent is None or parent["room_id"] != room_id:
        raise Invalid({"parent": "No such message in this room: a reply goes in the room of its thread."})
    root_id = parent["parent_id"] or parent_id
    root = Message.objects.select_for_update(of=("self",)).get(pk=root_id)
    if root.deleted:
        raise Invalid({"parent": "That thread's first message was deleted: it takes no new replies."})
    return root


def thread_reply_filed(*, root: Message, reply: Message, mentioned: list[int]) -> None:
    """Update the locked root's summary for a new reply, and make its people follow the thread."""
    root.reply_count += 1
    root.last_reply_id = reply.pk
    root.last_reply_at = reply.created_at
    root.last_replier_ids = _faces([reply.author_id, *root.last_replier_ids])
    root.save(update_fields=["reply_count", "last_reply_id", "last_reply_at", "last_replier_ids"])
    # The root's author follows unless they chose to stop; the replier and
    # anyone mentioned follow again even if they had stopped (they took part).
    ThreadState.objects.bulk_create([ThreadState(user_id=root.author_id, root=root)], ignore_conflicts=True)
    joined = {reply.author_id, *_room_members(root.room_id, mentioned)}
    ThreadState.objects.bulk_create(
        [ThreadState(user_id=user_id, root=root) for user_id in sorted(joined)],
        update_conflicts=True,
        unique_fields=["user", "root"],
        update_fields=["following"],
    )
    # The replier has read their own thread up to what they wrote.
    ThreadState.objects.filter(root=root, user_id=reply.author_id, last_read_id__lt=reply.pk).update(
        last_read_id=reply.pk
    )


def thread_reply_removed(*, reply: Message) -> Message:
    """Rewind the root's summary after one of its replies was deleted (inside the deletion's transaction)."""
    assert reply.parent_id is not None, "only a reply rewinds a thread"
    root = Message.objects.select_for_update(of=("self",)).get(pk=reply.parent_id)
    live = Message.objects.filter(parent=root, deleted_at__isnull=True).order_by("-id")
    newest = live.values("id", "created_at").first()
    root.reply_count = max(root.reply_count - 1, 0)
    root.last_reply_id = newest["id"] if newest else None
    root.last_reply_at = newest["created_at"] if newest else None
    # The faces come from the newest replies; a handful of rows through the (parent, id) index.
    root.last_replier_ids = _faces(list(live.values_list("author_id", flat=True)[: THREAD_FACES * 10]))
    root.save(update_fields=["reply_count", "last_reply_id", "last_reply_at", "last_replier_ids"])
    return root


def thread_summary(root: Message) -> dict[str, Any]:
    """The root's thread summary, sent beside a reply's events so open clients update the root."""
    return {
        "root": root.pk,
        "reply_count": root.reply_count,
        "last_reply_at": isoformat(root.last_reply_at),
        "last_repliers": list(root.last_replier_ids),
    }


def _faces(author_ids: list[int]) -> list[int]:
    faces: list[int] = []
    for author_id in author_ids:
        if author_id not in faces:
            faces.append(author_id)
        if len(faces) == THREAD_FACES:
            break
    return faces


def _room_members(room_id: int, user_ids: list[int]) -> list[int]:
    if not user_ids:
        return []
    from rooms.models import Membership

    return list(Membership.objects.filter(room_id=room_id, user_id__in=user_ids).values_list("user_id", flat=True))


# --- Reading threads ----------------------------------------------------------------------


def thread_root_for_member(*, user: User, message_id: int) -> Message:
    """Return the root of the thread `message_id` belongs to, if the user is a member of its room; else NotFound."""
    row = Message.objects.filter(pk=message_id, room__deleted_at__isnull=True).values("room_id", "parent_id").first()
    if row is None:
        raise NotFound("Message not found.")
    try:
        membership_require(user=user, room=row["room_id"])
    except NotFound:
        raise NotFound("Message not found.") from None
    from messaging.selectors import messages_with_details

    return messages_with_details().get(pk=row["parent_id"] or message_id)


def thread_replies(
    *, root: Message, after: int | None = None, limit: int = THREAD_PAGE_DEFAULT
) -> tuple[list[Message], bool]:
    """Return a page of a thread's replies in ascending id order, and whether more follow."""
    from messaging.selectors import messages_with_details

    replies = messages_with_details().filter(parent=root)
    if after is not None:
        replies = replies.filter(id__gt=after)
    page = list(replies.order_by("id")[: limit + 1])
    return page[:limit], len(page) > limit


def unread_replies(*, user: User | int, root_ref: Any, read_ref: Any) -> QuerySet[Message]:
    """Replies of a thread the user has not read: newer than their position, live, and not their own."""
    user_id = user if isinstance(user, int) else user.pk
    return Message.objects.filter(parent=root_ref, id__gt=read_ref, deleted_at__isnull=True).exclude(author_id=user_id)


def followed_threads(
    *, user: User, room_id: int | None = None, before: int | None = None, limit: int = THREAD_PAGE_DEFAULT
) -> tuple[list[ThreadState], bool]:
    """Return a page of the threads the user follows, latest reply first, and whether more follow.

    Each state is annotated with `unread_count` and `activity` (the id of the
    newest reply, or of the root when it has none: the keyset for `before`).
    """
    from messaging.selectors import messages_with_details
    from rooms.selectors import member_room_ids

    unread = (
        unread_replies(user=user, root_ref=OuterRef("root_id"), read_ref=OuterRef("last_read_id"))
        .order_by()
        .values("parent")
        .annotate(n=Count("id"))
        .values("n")
    )
    states = (
        ThreadState.objects.filter(user=user, following=True, root__room_id__in=member_room_ids(user=user))
        .annotate(
            activity=Coalesce("root__last_reply_id", "root_id", output_field=BigIntegerField()),
            unread_count=Coalesce(Subquery(unread, output_field=IntegerField()), Value(0)),
        )
        .order_by("-activity")
    )
    if room_id is not None:
        states = states.filter(root__room_id=room_id)
    if before is not None:
        states = states.filter(activity__lt=before)
    page: list[ThreadState] = list(states[: limit + 1])
    roots = messages_with_details().in_bulk([state.root_id for state in page[:limit]])
    for state in page[:limit]:
        state.root = roots[state.root_id]
    return page[:limit], len(page) > limit


def thread_state(*, user: User, root: Message) -> ThreadState | None:
    return ThreadState.objects.filter(user=user, root=root).first()


# --- Following and reading ------------------------------------------------------------------


@transaction.atomic
def thread_follow(*, user: User, root: Message, following: bool) -> None:
    """Follow or stop following a thread (the caller is a member of its room: see thread_root_for_member)."""
    ThreadState.objects.bulk_create(
        [ThreadState(user=user, root=root, following=following)],
        update_conflicts=True,
        unique_fields=["user", "root"],
        update_fields=["following"],
    )


@transaction.atomic
def thread_read(*, user: User, root: Message, message_id: int) -> bool:
    """Move the user's read position in the thread forward to `message_id`; return whether it moved.

    The move is recorded as a private `thread.read` event, so the user's other
    devices follow.
    """
    membership_require(user=user, room=root.room_id)
    if message_id != root.pk and not Message.objects.filter(pk=message_id, parent=root).exists():
        raise Invalid({"message_id": "No such message in this thread."})
    # Reading a thread does not follow it; the read position is kept all the same.
    ThreadState.objects.bulk_create([ThreadState(user=user, root=root, following=False)], ignore_conflicts=True)
    # A conditional update: two devices marking at once never move it back.
    moved = ThreadState.objects.filter(user=user, root=root, last_read_id__lt=message_id).update(
        last_read_id=message_id
    )
    if moved:
        event_record(
            type=Event.Type.THREAD_READ,
            room=root.room_id,
            user_id=user.pk,
            private=True,
            payload={"room": root.room_id, "root": root.pk, "message_id": message_id},
        )
    return bool(moved)
