"""Reads of rooms and memberships, with the visibility rules of docs/api.md.

Outsiders must not be able to tell a private room from a missing one, so
every lookup of a room the caller may not see raises `NotFound`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from django.db.models import Count, Exists, F, FilteredRelation, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from accounts.models import User
from core.api import ID_MAX
from core.errors import Forbidden, NotFound
from rooms.models import Ban, Membership, Room


class MessageCounts(Protocol):
    """What room summaries need from the rooms' messages, supplied by the messaging app.

    Rooms cannot import messaging (messaging depends on rooms), so the
    messaging app registers its implementation with `message_counts_register`
    when Django starts (`MessagingConfig.ready`).
    """

    def annotate(self, rooms: QuerySet[Room], user: User | None) -> QuerySet[Room]:
        """Return `rooms` annotated with `last_message_id`, and given a user `unread_count` and `mention_count`.

        The user's read marker is `mine__last_read_message_id` on the queryset.
        """
        ...

    def newest_message_id(self, room_id: int) -> int:
        """Return the id of the room's newest message, or 0."""
        ...


class _NoMessages:
    """Counts for a project without the messaging app: rooms with nothing in them."""

    def annotate(self, rooms: QuerySet[Room], user: User | None) -> QuerySet[Room]:
        rooms = rooms.annotate(last_message_id=Value(None, output_field=IntegerField()))
        if user is None:
            return rooms
        return rooms.annotate(unread_count=Value(0), mention_count=Value(0))

    def newest_message_id(self, room_id: int) -> int:
        return 0


_message_counts: MessageCounts = _NoMessages()


def message_counts_register(counts: MessageCounts) -> None:
    """Supply the message counts of room summaries (the messaging app calls this once, at start-up)."""
    global _message_counts
    _message_counts = counts


def newest_message_id(*, room_id: int) -> int:
    """Return the id of the room's newest message, or 0."""
    return _message_counts.newest_message_id(room_id)


def rooms_annotated(user: User | None) -> QuerySet[Room]:
    """Return live rooms annotated with the room summary and, given a user, their role and read state.

    The read state is the user's unread and unread-mention counts and their read marker.
    """
    member_count = (
        Membership.objects.filter(room=OuterRef("pk")).order_by().values("room").annotate(n=Count("id")).values("n")
    )
    rooms = Room.objects.filter(deleted_at__isnull=True).annotate(
        member_count=Coalesce(Subquery(member_count, output_field=IntegerField()), Value(0)),
    )
    if user is not None:
        rooms = rooms.annotate(mine=FilteredRelation("memberships", condition=Q(memberships__user=user))).annotate(
            my_role=F("mine__role"),
            last_read_message_id=Coalesce(F("mine__last_read_message_id"), Value(0)),
            notify_level=F("mine__notify_level"),
            muted_until=F("mine__muted_until"),
        )
    return _message_counts.annotate(rooms, user)


def attach_direct_members(rooms: Iterable[Room]) -> None:
    """Load the members of the direct rooms among `rooms` in one query."""
    direct = {room.pk: room for room in rooms if room.is_direct}
    if not direct:
        return
    for room in direct.values():
        room.member_list = []  # type: ignore[attr-defined]
    memberships = Membership.objects.filter(room_id__in=direct).select_related("user").order_by("room_id", "user_id")
    for membership in memberships:
        direct[membership.room_id].member_list.append(membership.user)  # type: ignore[attr-defined]


def room_list_for_member(*, user: User) -> list[Room]:
    """Return every live room the user belongs to, most recently active first."""
    rooms = list(
        rooms_annotated(user).filter(mine__isnull=False).order_by(F("last_message_id").desc(nulls_last=True), "-id")  # type: ignore[misc]
    )
    attach_direct_members(rooms)
    return rooms


def room_list_public(*, user: User, query: str = "", after: int = 0, limit: int = 50) -> tuple[list[Room], bool]:
    """Return a page of live public channels by id, and whether more follow.

    Each room is annotated with `banned`: whether the user is banned from it.
    """
    rooms_qs = (
        rooms_annotated(user)
        .filter(kind=Room.Kind.CHANNEL, visibility=Room.Visibility.PUBLIC, id__gt=after)
        .annotate(banned=Exists(Ban.objects.filter(room=OuterRef("pk"), user=user)))
    )
    if query:
        rooms_qs = rooms_qs.filter(Q(name__icontains=query) | Q(topic__icontains=query) | Q(slug__icontains=query))
    rooms: list[Room] = list(rooms_qs.order_by("id")[: limit + 1])
    return rooms[:limit], len(rooms) > limit


def room_get_visible(*, user: User, room_id: int) -> Room:
    """Return the annotated room if the user may see it: a member, or any user for a public channel."""
    room = rooms_annotated(user).filter(pk=room_id).first()
    # A private room or DM the caller is not in is reported exactly like a missing one.
    if room is None or (room.my_role is None and not room.is_public_channel):  # type: ignore[attr-defined]
        raise NotFound("Room not found.")
    attach_direct_members([room])
    return room


def membership_require(*, user: User, room: Room | int) -> Membership:
    """Return the user's membership of a live room, or raise as docs/api.md says outsiders are refused.

    Private rooms and DMs: NotFound. Public channels: Forbidden.
    """
    room_id = room if isinstance(room, int) else room.pk
    if not 0 < room_id <= ID_MAX:
        # No such room; SQLite cannot even compare an id beyond 64 bits (a 500 otherwise).
        raise NotFound("Room not found.")
    membership = (
        Membership.objects.select_related("room")
        .filter(room_id=room_id, user=user, room__deleted_at__isnull=True)
        .first()
    )
    if membership is not None:
        return membership
    visible_room = Room.objects.filter(pk=room_id, deleted_at__isnull=True).first()
    if visible_room is None or not visible_room.is_public_channel:
        raise NotFound("Room not found.")
    raise Forbidden("You are not a member of this room.")


def room_require_visible(*, user: User, room_id: int) -> Room:
    """Return a live room the user may see (a member, or any user for a public channel), else NotFound.

    Views call this before validating input, so an outsider learns nothing
    about a private room from a 400.
    """
    room = Room.objects.filter(pk=room_id, deleted_at__isnull=True).first()
    if room is None or not (room.is_public_channel or room.memberships.filter(user=user).exists()):
        raise NotFound("Room not found.")
    return room


def member_list(*, room: Room, after: int = 0, limit: int = 50) -> tuple[list[Membership], bool]:
    """Return a page of a room's memberships ordered by user id, and whether more follow."""
    memberships = list(
        Membership.objects.filter(room=room, user_id__gt=after).select_related("user").order_by("user_id")[: limit + 1]
    )
    return memberships[:limit], len(memberships) > limit


def ban_list_for_moderator(*, user: User, room_id: int, after: int = 0, limit: int = 50) -> tuple[list[Ban], bool]:
    """Return a page of a channel's bans ordered by user id, and whether more follow.

    Outsiders are refused as `membership_require` refuses them; members who
    are not the channel's owners or admins get Forbidden.
    """
    membership = membership_require(user=user, room=room_id)
    # Who is banned, by whom and why is for the people who run the channel.
    if not membership.can_moderate or membership.room.is_direct:
        raise Forbidden("Only the room's owners and admins may see its bans.")
    bans = list(
        Ban.objects.filter(room_id=room_id, user_id__gt=after)
        .select_related("user", "banned_by")
        .order_by("user_id")[: limit + 1]
    )
    return bans[:limit], len(bans) > limit


def is_banned(*, room: Room, user: User) -> bool:
    return Ban.objects.filter(room=room, user=user).exists()


def member_room_ids(*, user: User) -> QuerySet[Membership, Any]:
    """Return the ids of the live rooms a user is in, as a subquery-ready queryset."""
    return Membership.objects.filter(user=user, room__deleted_at__isnull=True).values("room_id")


def presence_rooms(*, user_id: int) -> QuerySet[Room]:
    """Return the live rooms of a user through which their presence shows: channels, and DMs written in.

    Opening a conversation with someone is not enough to learn whether they
    are around: a direct room counts from its first message on.
    """
    rooms = _message_counts.annotate(Room.objects.filter(memberships__user_id=user_id, deleted_at__isnull=True), None)
    return rooms.filter(Q(kind=Room.Kind.CHANNEL) | Q(last_message_id__isnull=False))


def presence_room_ids(user_id: int) -> list[int]:
    """Return the ids of `presence_rooms`, ascending."""
    return sorted(presence_rooms(user_id=user_id).values_list("pk", flat=True))


def roommates_among(*, user: User, user_ids: Iterable[int]) -> list[int]:
    """Return those of `user_ids` whose presence `user` may see (never `user`), ascending.

    They share a channel with `user`, or a direct room written in
    (`presence_rooms`), as for the socket's presence frames.
    """
    return sorted(
        Membership.objects.filter(user_id__in=set(user_ids), room_id__in=presence_rooms(user_id=user.pk).values("pk"))
        .exclude(user_id=user.pk)
        .values_list("user_id", flat=True)
        .distinct()
    )


def member_rooms(user_id: int) -> tuple[dict[int, str], dict[int, int]]:
    """Return ({room id: role}, {room id: joined event id}) for the live rooms a user is in."""
    rows = Membership.objects.filter(user_id=user_id, room__deleted_at__isnull=True).values_list(
        "room_id", "role", "joined_event_id"
    )
    roles: dict[int, str] = {}
    since: dict[int, int] = {}
    for room_id, role, joined_event_id in rows:
        roles[room_id] = role
        since[room_id] = joined_event_id or 0
    return roles, since
