"""Who hears of a new message, decided once, and the check made again when the delay is over.

The notifier follows the event record the way the socket pump does, but
from the worker and with a cursor kept in the database: each batch of
events is read after the cursor, and the notifications it decides, the jobs
that will check them and the cursor's new position commit in one
transaction. A crash or a restart between two batches repeats nothing
(the cursor moved with the batch) and loses nothing (a batch that did not
commit is read again); a (person, message) pair is unique besides.

The decision (`recipients`) for each `message.new`:

- never the author, nobody who left, no deactivated account;
- a member whose level for the room is `none`, who muted it, or who is in
  do-not-disturb hears nothing (mentions included);
- otherwise a DM, an @mention of them, a reply in a thread they follow,
  an allowed `@channel` (or `@here` while they are online), or any message
  of a room they set to `all` (but a thread reply only reaches the
  thread's followers, unless it was also sent to the room).

`@channel` and `@here` are allowed to the room's owners and admins, and to
anyone in a room of at most CHANNEL_MENTION_FREE_MEMBERS members; from
anyone else they are plain text. Who is online comes from `core.presence`
(shared through Redis; without it the worker sees nobody online).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core import presence
from messaging.models import Message, ThreadState
from notifications.models import Notification, NotifierCursor, Preferences
from rooms.events import Event, events_after, newest_event_id
from rooms.models import Membership, NotifyLevel, Room, default_notify_level

if TYPE_CHECKING:
    from collections.abc import Iterable

CHANNEL_MENTION_FREE_MEMBERS = 50
CHANNEL_MENTION_RE = re.compile(r"(?<![\w@.`])@(channel|everyone|here)\b")
# Batches one run of the notifier reads at most before giving the worker back.
BATCHES_PER_RUN = 20


@dataclass(frozen=True)
class Member:
    user_id: int
    role: str
    level: str
    muted_until: datetime | None


def silenced(*, level: str, muted_until: datetime | None, dnd_until: datetime | None, now: datetime) -> bool:
    """Whether a member hears nothing of a room now: level `none`, a mute, do-not-disturb."""
    return (
        level == NotifyLevel.NONE
        or (muted_until is not None and muted_until > now)
        or (dnd_until is not None and dnd_until > now)
    )


def mentions_channel(body: str) -> bool:
    """Whether the text says @channel, @everyone or @here."""
    return CHANNEL_MENTION_RE.search(body) is not None


def mentions_everyone(body: str) -> bool:
    """Whether it says @channel or @everyone (not only @here, which is for those online)."""
    return any(match.group(1) != "here" for match in CHANNEL_MENTION_RE.finditer(body))


def mentions_here(body: str) -> bool:
    """Whether it says @here (for those online), read by the same pattern as @channel."""
    return any(match.group(1) == "here" for match in CHANNEL_MENTION_RE.finditer(body))


def only_in_thread(message: Message) -> bool:
    """A thread reply not also sent to the room: its room's readers do not see it in the room."""
    return message.parent_id is not None and not message.broadcast


def recipients(
    *,
    message: Message,
    room: Room,
    members: list[Member],
    mentioned: set[int],
    dnd: dict[int, datetime | None],
    now: datetime,
    followers: frozenset[int] = frozenset(),
    online: frozenset[int] = frozenset(),
) -> dict[int, str]:
    """Return {user id: reason} of the members who should hear of `message`.

    `followers` follow the thread a reply is in; `online` have a socket open (for @here).
    """
    author = next((member for member in members if member.user_id == message.author_id), None)
    channel_allowed = mentions_channel(message.body) and (
        len(members) <= CHANNEL_MENTION_FREE_MEMBERS
        or (author is not None and author.role in (Membership.Role.OWNER, Membership.Role.ADMIN))
    )
    to_everyone = channel_allowed and mentions_everyone(message.body)
    chosen: dict[int, str] = {}
    for member in members:
        if member.user_id == message.author_id:
            continue
        if silenced(level=member.level, muted_until=member.muted_until, dnd_until=dnd.get(member.user_id), now=now):
            continue
        if room.is_direct:
            chosen[member.user_id] = Notification.Reason.DM
        elif member.user_id in mentioned:
            chosen[member.user_id] = Notification.Reason.MENTION
        elif member.user_id in followers:
            chosen[member.user_id] = Notification.Reason.THREAD
        elif channel_allowed and (to_everyone or member.user_id in online):
            chosen[member.user_id] = Notification.Reason.CHANNEL
        elif member.level == NotifyLevel.ALL and not only_in_thread(message):
            chosen[member.user_id] = Notification.Reason.ALL
    return chosen


def _members_by_room(room_ids: Iterable[int]) -> dict[int, list[Member]]:
    rows = (
        Membership.objects.filter(room_id__in=room_ids, user__is_active=True)
        .values_list("room_id", "user_id", "role", "notify_level", "muted_until", "room__kind")
        .order_by("room_id", "user_id")
    )
    members: dict[int, list[Member]] = {}
    for room_id, user_id, role, level, muted_until, kind in rows:
        members.setdefault(room_id, []).append(Member(user_id, role, level or default_notify_level(kind), muted_until))
    return members


def _decide(events: list[Event], now: datetime) -> list[Notification]:
    """Return the (unsaved) notifications that these events' new messages call for."""
    message_ids = [event.message_id for event in events if event.type == Event.Type.MESSAGE_NEW and event.message_id]
    if not message_ids:
        return []
    messages = list(
        Message.objects.filter(pk__in=message_ids, deleted_at__isnull=True)
        .select_related("room")
        .prefetch_related("mentions")
        .order_by("id")
    )
    members = _members_by_room({message.room_id for message in messages})
    user_ids = {member.user_id for room_members in members.values() for member in room_members}
    preferences = {p.user_id: p for p in Preferences.objects.filter(user_id__in=user_ids)}
    dnd = {user_id: p.dnd_until for user_id, p in preferences.items()}
    followers: dict[int, set[int]] = {}
    roots = {message.parent_id for message in messages if message.parent_id is not None}
    for root_id, user_id in ThreadState.objects.filter(root_id__in=roots, following=True).values_list(
        "root_id", "user_id"
    ):
        followers.setdefault(root_id, set()).add(user_id)
    # Who is online matters only to @here: asked once a batch, and only when some message says it.
    here_rooms = {message.room_id for message in messages if mentions_here(message.body)}
    online = frozenset(
        presence.online_among(sorted({m.user_id for room_id in here_rooms for m in members.get(room_id, [])}))
    )
    decided = []
    for message in messages:
        mentioned = {user.pk for user in message.mentions.all()}
        chosen = recipients(
            message=message,
            room=message.room,
            members=members.get(message.room_id, []),
            mentioned=mentioned,
            dnd=dnd,
            now=now,
            followers=frozenset(followers.get(message.parent_id or 0, ())),
            online=online,
        )
        for user_id, reason in chosen.items():
            wants = preferences.get(user_id) or Preferences()
            # Email only for what concerns the person: DMs, mentions, followed threads, @channel.
            emailed = wants.email and reason != Notification.Reason.ALL
            decided.append(
                Notification(
                    user_id=user_id,
                    room_id=message.room_id,
                    message_id=message.pk,
                    reason=reason,
                    push_state=Notification.State.PENDING if wants.push else Notification.State.NONE,
                    email_state=Notification.State.PENDING if emailed else Notification.State.NONE,
                    email_due_at=now + timedelta(seconds=wants.email_delay_seconds) if emailed else None,
                )
            )
    return decided


def notifier_batch(*, now: datetime | None = None) -> int | None:
    """Decide the notifications of the next batch of events; return how many events it read (None: caught up).

    One transaction: the cursor row is locked, so two workers never take the
    same batch, and it moves only with what the batch decided.
    """
    from notifications import tasks

    now = now or timezone.now()
    with transaction.atomic():
        cursor = NotifierCursor.objects.select_for_update().filter(pk=1).first()
        if cursor is None:
            # The first run starts at the log's head: history is nobody's news.
            NotifierCursor.objects.create(pk=1, position=newest_event_id())
            return None
        events = events_after(cursor.position)
        if not events:
            return None
        decided = Notification.objects.bulk_create(_decide(events, now))
        delay = timedelta(seconds=settings.PUSH_DELAY_SECONDS)
        for message_id in sorted({n.message_id for n in decided if n.push_state == Notification.State.PENDING}):
            tasks.message_notifications_check.using(run_after=now + delay).enqueue(message_id)
        for event in events:
            if event.type == Event.Type.READ and event.user_id is not None:
                dismiss_on_read(user_id=event.user_id, room_id=event.room_id, message_id=event.payload["message_id"])
        cursor.position = events[-1].id
        cursor.save(update_fields=["position"])
        return len(events)


def notifier_run() -> int:
    """Read the event record up to its head (at most BATCHES_PER_RUN batches); return how many events."""
    total = 0
    for _ in range(BATCHES_PER_RUN):
        read = notifier_batch()
        if read is None:
            break
        total += read
    return total


def still_due(notification: Notification, *, now: datetime) -> bool:
    """Whether, looked at again now, the notification should still go out (see `still_due_among`)."""
    return notification.pk in still_due_among([notification], now=now)


def still_due_among(notifications: list[Notification], *, now: datetime) -> set[int]:
    """Return the ids of those notifications that, looked at again now, should still go out.

    Not if the message was deleted, or edited so it no longer mentions the
    person (for a mention) or no longer says @channel, if they read it (a
    reply only in its thread: read in the thread), stopped following its
    thread (for a followed thread), left the room, were deactivated, or
    silenced the room or themselves meanwhile. A few queries for the lot, whatever their number: a
    `@channel` to a thousand people is checked in one go.
    """
    if not notifications:
        return set()
    pairs = {(n.room_id, n.user_id) for n in notifications}
    user_ids = {user_id for _, user_id in pairs}
    memberships = {
        (m.room_id, m.user_id): m
        for m in Membership.objects.filter(
            room_id__in={room_id for room_id, _ in pairs}, user_id__in=user_ids, user__is_active=True
        ).only("room_id", "user_id", "last_read_message_id", "notify_level", "muted_until")
    }
    dnd = dict(Preferences.objects.filter(user_id__in=user_ids).values_list("user_id", "dnd_until"))
    mention_ids = [n.message_id for n in notifications if n.reason == Notification.Reason.MENTION]
    mentioned = set(
        Message.mentions.through.objects.filter(message_id__in=mention_ids, user_id__in=user_ids).values_list(
            "message_id", "user_id"
        )
    )
    roots = {n.message.parent_id for n in notifications if only_in_thread(n.message)}
    threads = {
        (state.root_id, state.user_id): state
        for state in ThreadState.objects.filter(root_id__in=roots, user_id__in=user_ids).only(
            "root_id", "user_id", "following", "last_read_id"
        )
    }
    due = set()
    for notification in notifications:
        message = notification.message
        membership = memberships.get((notification.room_id, notification.user_id))
        if message.deleted_at is not None or membership is None:
            continue
        if only_in_thread(message):
            thread = threads.get((message.parent_id or 0, notification.user_id))
            if thread is not None and thread.last_read_id >= message.pk:
                continue
            if notification.reason == Notification.Reason.THREAD and (thread is None or not thread.following):
                continue
        elif membership.last_read_message_id >= message.pk:
            continue
        level = membership.notify_level or default_notify_level(message.room.kind)
        if silenced(level=level, muted_until=membership.muted_until, dnd_until=dnd.get(notification.user_id), now=now):
            continue
        if notification.reason == Notification.Reason.MENTION and (message.pk, notification.user_id) not in mentioned:
            continue
        if notification.reason == Notification.Reason.CHANNEL and not mentions_channel(message.body):
            continue
        due.add(notification.pk)
    return due


def dismiss_on_read(*, user_id: int, room_id: int, message_id: int) -> None:
    """The person read up to `message_id` somewhere: their devices drop what was pushed about it.

    Pending ones are left to their check, which will find them read.
    """
    from notifications import push

    read = Notification.objects.filter(
        user_id=user_id,
        room_id=room_id,
        message_id__lte=message_id,
        push_state=Notification.State.SENT,
        dismissed=False,
    )
    to_dismiss = list(read.values_list("pk", "message_id"))
    if not to_dismiss:
        return
    Notification.objects.filter(pk__in=[pk for pk, _ in to_dismiss]).update(dismissed=True)
    for _pk, dismissed_message_id in to_dismiss:
        push.dismiss_enqueue(user_id=user_id, room_id=room_id, message_id=dismissed_message_id)
