"""Every change to messages: post, edit, delete, react, report.

Each runs in one transaction, records exactly one event as its last write
(see `rooms.events`) and leaves the broadcast to on_commit. The REST views,
the WebSocket consumer and the admin all call these.
"""

from __future__ import annotations

import unicodedata

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, OuterRef, Subquery
from django.utils import timezone

from accounts.models import ModerationAction, User
from accounts.payloads import user_payload
from accounts.services import moderation_record
from core.errors import Forbidden, Invalid, NotFound
from core.text import has_visible_character
from files import services as files_services
from files.models import StoredFile
from messaging import markdown
from messaging.models import Message, MessageEdit, Reaction, Report
from messaging.payloads import message_payload
from messaging.selectors import message_reload
from messaging.threads import thread_reply_filed, thread_reply_removed, thread_root_lock, thread_summary
from rooms import membership_cache
from rooms.events import Event, event_payloads_redact, event_payloads_replace_user, event_record
from rooms.models import Membership, Room
from rooms.selectors import membership_require

CLIENT_ID_MAX = 64
EMOJI_MAX = 32
REPORT_REASON_MAX = 1000


# --- Validation ------------------------------------------------------------------------


def clean_body(body: object) -> str:
    """Return the trimmed body, or raise Invalid if it is empty, shows nothing, or is too long."""
    if not isinstance(body, str):
        raise Invalid({"body": "Must be a string."})
    body = body.strip()
    if not body:
        raise Invalid({"body": "A message cannot be empty."})
    if len(body) > settings.MESSAGE_MAX_LENGTH:
        limit = settings.MESSAGE_MAX_LENGTH
        raise Invalid({"body": f"A message has at most {limit} characters (this has {len(body)})."})
    if "\x00" in body:
        raise Invalid({"body": "A message cannot contain NUL characters."})
    try:
        body.encode()
    except UnicodeEncodeError:
        # A lone surrogate (JSON allows "\\ud83d") cannot be stored; REST's serializer refuses it too.
        raise Invalid({"body": "A message cannot contain surrogate characters."}) from None
    if not has_visible_character(body):
        # Zero-width spaces and the like survive strip() and would post a blank message.
        raise Invalid({"body": "A message needs at least one visible character."})
    return body


def clean_client_id(client_id: object) -> str | None:
    if client_id is None or client_id == "":
        return None
    if not isinstance(client_id, str) or len(client_id) > CLIENT_ID_MAX or not client_id.isprintable():
        raise Invalid({"client_id": f"Must be a printable string of at most {CLIENT_ID_MAX} characters."})
    return client_id


def clean_emoji(emoji: object) -> str:
    """Accept a Unicode emoji sequence or a :short_code:."""
    if not isinstance(emoji, str):
        raise Invalid({"emoji": "Must be a string."})
    emoji = emoji.strip()
    if not emoji or len(emoji) > EMOJI_MAX:
        raise Invalid({"emoji": f"Give one emoji (at most {EMOJI_MAX} characters)."})
    if emoji.startswith(":") and emoji.endswith(":") and len(emoji) > 2:
        if all(ch.isascii() and (ch.isalnum() or ch in "_+-") for ch in emoji[1:-1]):
            return emoji
    elif all(_is_emoji_part(ch) for ch in emoji) and any(unicodedata.category(ch) == "So" for ch in emoji):
        return emoji
    raise Invalid({"emoji": "Use an emoji, or a short code like :thumbsup:."})


def _is_emoji_part(ch: str) -> bool:
    # Pictographs (So), modifiers and joiners (Sk, Mn, Me, Cf), and keycap bases.
    return unicodedata.category(ch) in {"So", "Sk", "Mn", "Me", "Cf"} or ch in "0123456789#*"


def _mentionable_users(body: str, *, room_id: int) -> dict[str, int]:
    """Return {lower-cased username: id} of the room's active members the body names with @.

    Only members can be mentioned: anyone else's @name stays plain text, so
    neither the html nor `mentions` tells the room who they are.
    """
    names = markdown.mentioned_usernames(body)
    if not names:
        return {}
    users = User.objects.filter(
        username__iregex=r"^(" + "|".join(map(_regex_escape, names)) + r")$",
        is_active=True,
        memberships__room_id=room_id,
    )
    return {username.lower(): pk for pk, username in users.values_list("pk", "username")}


def _regex_escape(name: str) -> str:
    # Usernames hold only [A-Za-z0-9_.-]; only the dot and dash need escaping.
    return name.replace(".", r"\.").replace("-", r"\-")


def _linkable_channels(body: str) -> dict[str, int]:
    """Return {lower-cased slug: id} of the live public channels the body names with #.

    Only public channels become links: naming a private one must not tell the
    room that it exists.
    """
    names = markdown.mentioned_channels(body)
    if not names:
        return {}
    rooms = Room.objects.filter(
        slug__in=sorted(names)[:50],
        kind=Room.Kind.CHANNEL,
        visibility=Room.Visibility.PUBLIC,
        deleted_at__isnull=True,
    )
    return {slug.lower(): pk for pk, slug in rooms.values_list("pk", "slug")}


def _render(body: str, *, room_id: int) -> tuple[str, list[int]]:
    known = _mentionable_users(body, room_id=room_id)
    # Without a known name in the text there is no mention: skip the second parse.
    mentioned = list(markdown.mentioned_ids(known, body)) if known else []
    return markdown.render(body, known_users=known, known_channels=_linkable_channels(body)), mentioned


def _announce_update(message: Message, *, actor: User) -> Message:
    """Record message.updated with the whole current message, and return it reloaded."""
    fresh = message_reload(message.pk)
    event_record(
        type=Event.Type.MESSAGE_UPDATED,
        room=fresh.room,
        actor_id=actor.pk,
        message_id=fresh.pk,
        payload={"room": fresh.room_id, "message": dict(message_payload(fresh))},
    )
    return fresh


def _require_live(message: Message) -> None:
    if message.deleted:
        raise Invalid("This message was deleted.")


# --- Posting ---------------------------------------------------------------------------


def message_post(
    *,
    room: Room | int,
    author: User,
    body: object = "",
    client_id: object = None,
    parent: object = None,
    attachments: object = None,
    broadcast: object = False,
) -> tuple[Message, bool]:
    """Save a message, or return the one this client_id already made; return it and whether it is new.

    `attachments` lists the author's uploads into the room (files app); with
    any, the body may be empty. With `parent` it is a reply, filed under the
    thread's root (messaging.threads); `broadcast` also lists the reply in the
    room's history. The broadcast goes out after commit. A concurrent retry
    with the same client_id waits on the unique index, then finds the first
    message.
    """
    file_ids = files_services.clean_attachment_ids(attachments)
    # With files attached, no text is needed: an empty or missing body stays empty.
    without_text = body is None or (isinstance(body, str) and not body.strip())
    clean_text = "" if file_ids and without_text else clean_body(body)
    clean_id = clean_client_id(client_id)
    if parent is not None and (not isinstance(parent, int) or isinstance(parent, bool) or parent < 1):
        raise Invalid({"parent": "Must be a message id."})
    if broadcast is None:
        broadcast = False
    if not isinstance(broadcast, bool):
        raise Invalid({"broadcast": "Must be true or false."})
    if broadcast and parent is None:
        raise Invalid({"broadcast": "Only a reply in a thread can also be sent to the room."})
    room_id = room if isinstance(room, int) else room.pk
    try:
        return _message_insert(
            room_id=room_id,
            author=author,
            body=clean_text,
            client_id=clean_id,
            parent_id=parent,
            file_ids=file_ids,
            broadcast=broadcast,
        )
    except IntegrityError:
        if clean_id is None:
            raise
        existing = Message.objects.filter(room_id=room_id, author=author, client_id=clean_id).first()
        if existing is None:
            raise
        return message_reload(existing.pk), False


@transaction.atomic
def _message_insert(
    *,
    room_id: int,
    author: User,
    body: str,
    client_id: str | None,
    parent_id: int | None,
    file_ids: list[int],
    broadcast: bool,
) -> tuple[Message, bool]:
    # From the cache when it can: a post's only other statements are its two inserts.
    membership_cache.require_member(user=author, room_id=room_id)
    root = thread_root_lock(parent_id=parent_id, room_id=room_id) if parent_id is not None else None
    html, mentioned = _render(body, room_id=room_id) if body else ("", [])
    # A retry with a client_id already used fails on the unique index; message_post
    # then returns the first message. Not looked up first: retries are rare, posts are not.
    message = Message.objects.create(
        room_id=room_id,
        author=author,
        body=body,
        html=html,
        client_id=client_id,
        parent_id=root.pk if root is not None else None,
        broadcast=broadcast,
    )
    message.author = author
    # A new message has no reactions; skip the prefetch query (callers may still read them).
    message._prefetched_objects_cache = {"reactions": Reaction.objects.none()}  # type: ignore[attr-defined]
    attached = files_services.attachments_claim(
        file_ids=file_ids, uploader=author, room_id=room_id, message_id=message.pk
    )
    message._prefetched_objects_cache["attachments"] = _as_prefetched(message, attached)  # type: ignore[attr-defined]
    if mentioned:
        # Drops the cached mentions, so the payload reads them back.
        message.mentions.set(mentioned)
    else:
        message._prefetched_objects_cache["mentions"] = User.objects.none()  # type: ignore[attr-defined]
    payload: dict[str, object] = {"room": room_id, "message": dict(message_payload(message, new=True))}
    if root is not None:
        # The reply's counts change in its own transaction: no recount ever drifts.
        thread_reply_filed(root=root, reply=message, mentioned=mentioned)
        payload["thread"] = thread_summary(root)
    event_record(type=Event.Type.MESSAGE_NEW, room=room_id, actor_id=author.pk, message_id=message.pk, payload=payload)
    return message, True


def _as_prefetched(message: Message, files: list[StoredFile]) -> object:
    """The message's attachments queryset already holding `files`, as a prefetch leaves it: read without a query."""
    holder = StoredFile.objects.filter(message=message).order_by("position")
    holder._result_cache = list(files)  # type: ignore[attr-defined]
    holder._prefetch_done = True  # type: ignore[attr-defined]
    return holder


def attachments_announce(message_id: int, actor_id: int | None) -> None:
    """Record message.updated for a message whose attachments changed (a thumbnail made, a file removed).

    Registered with files.services at start-up, and run in the files
    service's transaction.
    """
    fresh = message_reload(message_id)
    if fresh.deleted:
        return
    event_record(
        type=Event.Type.MESSAGE_UPDATED,
        room=fresh.room_id,
        actor_id=actor_id,
        message_id=fresh.pk,
        payload={"room": fresh.room_id, "message": dict(message_payload(fresh))},
    )


# --- Editing and deleting ----------------------------------------------------------------


@transaction.atomic
def message_edit(*, actor: User, message: Message, body: object) -> Message:
    """Replace a message's text, keeping the old text in its edit history."""
    clean_text = clean_body(body)
    membership_require(user=actor, room=message.room_id)
    message = Message.objects.select_for_update().get(pk=message.pk)
    # Only the author may put words in their own mouth.
    if message.author_id != actor.pk:
        raise Forbidden("Only the author may edit a message.")
    _require_live(message)
    if clean_text == message.body:
        return message_reload(message.pk)
    now = timezone.now()
    MessageEdit.objects.create(message=message, body=message.body, edited_at=now)
    html, mentioned = _render(clean_text, room_id=message.room_id)
    message.body, message.html, message.edited_at = clean_text, html, now
    message.save(update_fields=["body", "html", "edited_at"])
    message.mentions.set(mentioned)
    return _announce_update(message, actor=actor)


@transaction.atomic
def message_delete(*, actor: User, message: Message, reason: str = "", via: str = "api") -> None:
    """Delete a message: its text, edit history and reactions go; a tombstone stays.

    The author, the room's owners and admins, and staff may delete. Deleting
    someone else's message is moderation: it is logged with its reason and
    settles the message's open reports.
    """
    message = Message.objects.select_for_update(of=("self",)).select_related("room").get(pk=message.pk)
    if not actor.is_staff:
        membership = membership_require(user=actor, room=message.room)
        # Moderators clean up their room; everyone else only their own words.
        if message.author_id != actor.pk and not membership.can_moderate:
            raise Forbidden("Only the author or the room's owners and admins may delete this message.")
    if message.deleted:
        return
    message.deleted_at = timezone.now()
    message.body = ""
    message.html = ""
    message.save(update_fields=["deleted_at", "body", "html"])
    message.edits.all().delete()
    message.reactions.all().delete()
    message.mentions.clear()
    if message.author_id != actor.pk:
        moderation_record(
            actor=actor,
            action=ModerationAction.Kind.MESSAGE_DELETE,
            target_user=message.author,
            room_id=message.room_id,
            message_id=message.pk,
            reason=reason,
            via=via,
        )
        message.reports.filter(status=Report.Status.OPEN).update(
            status=Report.Status.RESOLVED, handled_by=actor, handled_at=message.deleted_at
        )
    fresh = message_reload(message.pk)
    redacted: dict[str, object] = {"room": fresh.room_id, "message": dict(message_payload(fresh))}
    if message.parent_id is not None:
        # Deleting a reply rewinds its thread's count, last reply and faces.
        redacted["thread"] = thread_summary(thread_reply_removed(reply=message))
    # Earlier events must not replay the deleted text on resume.
    event_payloads_redact(message_id=message.pk, payload=redacted)
    event_record(
        type=Event.Type.MESSAGE_UPDATED,
        room=fresh.room,
        actor_id=actor.pk,
        message_id=fresh.pk,
        payload=redacted,
    )


# --- Reactions -------------------------------------------------------------------------------


@transaction.atomic
def reaction_add(*, user: User, message: Message, emoji: object) -> tuple[Message, bool]:
    """Add the user's reaction; return the message and whether the reaction is new."""
    clean = clean_emoji(emoji)
    membership_require(user=user, room=message.room_id)
    message = Message.objects.select_for_update().get(pk=message.pk)
    _require_live(message)
    if Reaction.objects.filter(message=message, user=user, emoji=clean).exists():
        return message_reload(message.pk), False
    Reaction.objects.create(message=message, user=user, emoji=clean)
    return _announce_update(message, actor=user), True


@transaction.atomic
def reaction_remove(
    *, user: User, message: Message, emoji: str, moderator: User | None = None, reason: str = "", via: str = "api"
) -> Message:
    """Remove the user's reaction, or raise NotFound if they had none.

    Staff remove someone's reaction from the admin as `moderator`, logged with their reason.
    """
    if moderator is None:
        membership_require(user=user, room=message.room_id)
    elif not moderator.is_staff:
        raise Forbidden("Only staff may remove other people's reactions.")
    try:
        clean = clean_emoji(emoji)
    except Invalid:
        # What is no emoji was never a reaction; and PostgreSQL refuses a NUL even in a lookup.
        raise NotFound("You have not reacted with that emoji.") from None
    message = Message.objects.select_for_update().get(pk=message.pk)
    deleted, _ = Reaction.objects.filter(message=message, user=user, emoji=clean).delete()
    if not deleted:
        raise NotFound("You have not reacted with that emoji.")
    if moderator is not None:
        moderation_record(
            actor=moderator,
            action=ModerationAction.Kind.REACTION_REMOVE,
            target_user=user,
            room_id=message.room_id,
            message_id=message.pk,
            reason=reason,
            via=via,
            detail=clean,
        )
    return _announce_update(message, actor=moderator or user)


# --- Reports ---------------------------------------------------------------------------------


@transaction.atomic
def report_create(*, reporter: User, message: Message, reason: object) -> tuple[Report, bool]:
    """File a report for the moderators; a repeat of an open report returns the first one."""
    if not isinstance(reason, str) or not reason.strip():
        raise Invalid({"reason": "Say why you are reporting this message."})
    reason = reason.strip()
    if len(reason) > REPORT_REASON_MAX:
        raise Invalid({"reason": f"Use at most {REPORT_REASON_MAX} characters."})
    membership_require(user=reporter, room=message.room_id)
    if message.author_id == reporter.pk:
        raise Invalid("You cannot report your own message.")
    _require_live(message)
    existing = Report.objects.filter(message=message, reporter=reporter, status=Report.Status.OPEN).first()
    if existing is not None:
        return existing, False
    return Report.objects.create(message=message, reporter=reporter, reason=reason), True


@transaction.atomic
def report_close(*, actor: User, report: Report, status: str, reason: str = "", via: str = "admin") -> Report:
    """Close a report's case as resolved (acted on) or dismissed (nothing wrong), and log who and why.

    Every report of one message is one case: closing one closes all the open
    reports of that message, in one moderation log entry.
    """
    # The queue is the site moderators'; room owners act on messages directly.
    if not actor.is_staff:
        raise Forbidden("Only staff may handle reports.")
    kinds = {
        Report.Status.RESOLVED: ModerationAction.Kind.REPORT_RESOLVE,
        Report.Status.DISMISSED: ModerationAction.Kind.REPORT_DISMISS,
    }
    if status not in kinds:
        raise Invalid({"status": "Use 'resolved' or 'dismissed'."})
    report = Report.objects.select_for_update(of=("self",)).select_related("message").get(pk=report.pk)
    report.status, report.handled_by, report.handled_at = status, actor, timezone.now()
    report.save(update_fields=["status", "handled_by", "handled_at"])
    others = Report.objects.filter(message_id=report.message_id, status=Report.Status.OPEN).update(
        status=status, handled_by=actor, handled_at=report.handled_at
    )
    moderation_record(
        actor=actor,
        action=kinds[Report.Status(status)],
        target_user=report.message.author,
        room_id=report.message.room_id,
        message_id=report.message_id,
        report_id=report.pk,
        reason=reason,
        via=via,
        detail=f"and {others} other report(s) of the message" if others else "",
    )
    return report


# --- Erased accounts ---------------------------------------------------------------------


def user_erased(user: User) -> None:
    """Make the event record forget an erased account's name, in the erasure's transaction.

    Registered with accounts.services at start-up: events of its messages, of
    its rooms and about it replay with the erased shape ("Deleted user").
    """
    event_payloads_replace_user(
        user_id=user.pk,
        replacement=dict(user_payload(user)),
        message_ids=Message.objects.filter(author=user).values_list("id", flat=True),
    )


# --- Read markers ------------------------------------------------------------------------


@transaction.atomic
def read_mark(*, user: User, room: Room, message_id: int) -> bool:
    """Move the user's read marker forward to `message_id`; return whether it moved."""
    membership = membership_require(user=user, room=room)
    if not Message.objects.filter(pk=message_id, room_id=membership.room_id).exists():
        raise Invalid({"message_id": "No such message in this room."})
    # A conditional update: concurrent marks from two devices never move it back.
    moved = Membership.objects.filter(pk=membership.pk, last_read_message_id__lt=message_id).update(
        last_read_message_id=message_id
    )
    if moved:
        event_record(
            type=Event.Type.READ,
            room=membership.room,
            user_id=user.pk,
            private=True,
            payload={"room": membership.room_id, "message_id": message_id},
        )
    return bool(moved)


@transaction.atomic
def read_mark_all(*, user: User) -> dict[int, int]:
    """Mark everything read: move the user's marker in each of their rooms to its newest message.

    Return {room id: new marker} for the rooms whose marker moved. Each move is
    the same conditional, forward-only update as `read_mark` and records the
    same private `read` event, so the user's other devices clear each badge
    with the handling they already have. Thread read positions are not touched.
    """
    newest = Message.objects.filter(room_id=OuterRef("room_id")).order_by("-id").values("id")[:1]
    behind = (
        Membership.objects.filter(user=user, room__deleted_at__isnull=True)
        .annotate(newest_id=Subquery(newest))
        .filter(newest_id__gt=F("last_read_message_id"))
        .select_related("room")
        .order_by("room_id")
    )
    moved: dict[int, int] = {}
    for membership in behind:
        message_id = membership.newest_id  # type: ignore[attr-defined]
        if Membership.objects.filter(pk=membership.pk, last_read_message_id__lt=message_id).update(
            last_read_message_id=message_id
        ):
            event_record(
                type=Event.Type.READ,
                room=membership.room,
                user_id=user.pk,
                private=True,
                payload={"room": membership.room_id, "message_id": message_id},
            )
            moved[membership.room_id] = message_id
    return moved
