"""The wire shape of a message: one builder for REST replies, WebSocket events and replay."""

from typing import TypedDict

from accounts.payloads import UserPayload, user_payload
from core.wire import isoformat
from files.payloads import FilePayload, file_payload
from messaging.models import Message, MessageEdit, Report


class ReactionPayload(TypedDict):
    emoji: str
    count: int
    users: list[int]


class MessagePayload(TypedDict):
    id: int
    room: int
    author: UserPayload
    body: str
    html: str
    client_id: str | None
    parent: int | None
    created_at: str | None
    edited_at: str | None
    deleted: bool
    reactions: list[ReactionPayload]
    mentions: list[int]
    attachments: list[FilePayload]
    broadcast: bool
    reply_count: int
    last_reply_at: str | None
    last_repliers: list[int]
    pinned: bool


class EditPayload(TypedDict):
    body: str
    edited_at: str | None


class ReportPayload(TypedDict):
    id: int
    message: int
    reason: str
    status: str
    created_at: str | None


def report_payload(report: Report) -> ReportPayload:
    """Return a report as its reporter sees it."""
    return {
        "id": report.pk,
        "message": report.message_id,
        "reason": report.reason,
        "status": report.status,
        "created_at": isoformat(report.created_at),
    }


def edit_payload(edit: MessageEdit) -> EditPayload:
    """Return one earlier text of a message, as `messages/{id}/edits/` lists them."""
    return {"body": edit.body, "edited_at": isoformat(edit.edited_at)}


def reactions_payload(message: Message) -> list[ReactionPayload]:
    """Group a message's reactions by emoji, in the order each emoji was first used.

    Reads `message.reactions.all()`, which callers prefetch (ordered by id).
    """
    grouped: dict[str, list[int]] = {}
    for reaction in message.reactions.all():
        grouped.setdefault(reaction.emoji, []).append(reaction.user_id)
    return [{"emoji": emoji, "count": len(users), "users": users} for emoji, users in grouped.items()]


def mention_ids(message: Message) -> list[int]:
    """Return the ids of the users the message @mentions, ascending.

    Reads `message.mentions.all()`, which callers prefetch. Clients decide who
    was mentioned from this list alone, never from the text of `html`.
    """
    return sorted(user.pk for user in message.mentions.all())


def message_payload(message: Message, *, new: bool = False) -> MessagePayload:
    """Return the message's wire shape; `new` says it was just inserted (no reactions yet, nothing to read)."""
    deleted = message.deleted
    return {
        "id": message.pk,
        "room": message.room_id,
        "author": user_payload(message.author),
        "body": "" if deleted else message.body,
        "html": "" if deleted else message.html,
        "client_id": message.client_id,
        "parent": message.parent_id,
        "created_at": isoformat(message.created_at),
        "edited_at": isoformat(message.edited_at),
        "deleted": deleted,
        "reactions": [] if deleted or new else reactions_payload(message),
        "mentions": [] if deleted else mention_ids(message),
        # Prefetched in position order (messaging.selectors.messages_with_details).
        "attachments": [] if deleted else [file_payload(stored) for stored in message.attachments.all()],
        "broadcast": message.broadcast,
        # A thread's summary stays under a deleted root: its replies are still there.
        "reply_count": message.reply_count,
        "last_reply_at": isoformat(message.last_reply_at),
        "last_repliers": list(message.last_replier_ids),
        "pinned": message.pinned_at is not None and not deleted,
    }
