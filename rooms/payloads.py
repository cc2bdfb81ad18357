"""The wire shape of a room, shared by the REST API, WebSocket frames and events."""

from typing import NotRequired, TypedDict

from accounts.payloads import UserPayload, user_payload
from core.wire import isoformat
from rooms.models import Ban, Membership, Room, default_notify_level


class RoomPayload(TypedDict):
    id: int
    kind: str
    name: str
    slug: str
    topic: str
    visibility: str
    is_default: bool
    created_at: str | None
    member_count: int
    my_role: str | None
    unread_count: int
    mention_count: int
    last_read_message_id: int
    last_message_id: int | None
    notify_level: str
    muted_until: str | None
    members: NotRequired[list[UserPayload]]


class PublicRoomPayload(RoomPayload):
    banned: bool


class BanPayload(TypedDict):
    room: int
    user: UserPayload
    reason: str
    banned_by: UserPayload | None
    created_at: str | None


class MemberPayload(TypedDict):
    user: UserPayload
    role: str
    joined_at: str | None


def room_payload(room: Room) -> RoomPayload:
    """Shape a room annotated by `rooms.selectors` (member_count, my_role, …).

    Direct rooms carry `member_list`, attached by the selectors.
    """
    payload: RoomPayload = {
        "id": room.pk,
        "kind": room.kind,
        "name": room.name,
        "slug": room.slug,
        "topic": room.topic,
        "visibility": room.visibility,
        "is_default": room.is_default,
        "created_at": isoformat(room.created_at),
        "member_count": getattr(room, "member_count", 0) or 0,
        "my_role": getattr(room, "my_role", None),
        "unread_count": getattr(room, "unread_count", 0) or 0,
        "mention_count": getattr(room, "mention_count", 0) or 0,
        "last_read_message_id": getattr(room, "last_read_message_id", 0) or 0,
        "last_message_id": getattr(room, "last_message_id", None),
        "notify_level": getattr(room, "notify_level", "") or default_notify_level(room.kind),
        "muted_until": isoformat(getattr(room, "muted_until", None)),
    }
    if room.is_direct:
        payload["members"] = [user_payload(user) for user in getattr(room, "member_list", [])]
    return payload


def member_payload(membership: Membership) -> MemberPayload:
    return {
        "user": user_payload(membership.user),
        "role": membership.role,
        "joined_at": isoformat(membership.joined_at),
    }


def public_room_payload(room: Room) -> PublicRoomPayload:
    """Shape a room of the public list: a room, and whether the caller is banned from it."""
    return {**room_payload(room), "banned": bool(getattr(room, "banned", False))}


def ban_payload(ban: Ban) -> BanPayload:
    return {
        "room": ban.room_id,
        "user": user_payload(ban.user),
        "reason": ban.reason,
        "banned_by": user_payload(ban.banned_by) if ban.banned_by is not None else None,
        "created_at": isoformat(ban.created_at),
    }
