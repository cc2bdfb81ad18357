"""The wire shape of a message: one builder for REST replies, WebSocket events and replay."""

from __future__ import annotations

from typing import TypedDict

from accounts.payloads import UserPayload, user_payload
from chatproject.wire import isoformat
from messaging.models import Message


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


class EditPayload(TypedDict):
    body: str
    edited_at: str | None


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
    }
