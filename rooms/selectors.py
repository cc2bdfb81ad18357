"""Reads of rooms and memberships, with the visibility rules of API.md.

Outsiders must not be able to tell a private room from a missing one, so
every lookup of a room the caller may not see raises `NotFound`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.apps import apps
from django.db.models import (
    Count,
    Exists,
    F,
    FilteredRelation,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce

from accounts.models import User
from chatproject.errors import Forbidden, NotFound
from rooms.models import Ban, Membership, Room


def _message_model():  # type: ignore[no-untyped-def]
    # Unread counts and last ids are read from messaging's table; looked up
    # lazily because messaging depends on rooms, not the reverse.
    return apps.get_model("messaging", "Message")


def rooms_annotated(user: User | None) -> QuerySet[Room]:
    """Return live rooms annotated with the room summary and, given a user, their role and read state.

    The read state is the user's unread and unread-mention counts and their read marker.
    """
    message = _message_model()
    member_count = (
        Membership.objects.filter(room=OuterRef("pk")).order_by().values("room").annotate(n=Count("id")).values("n")
    )
    last_message_id = message.objects.filter(room=OuterRef("pk")).order_by("-id").values("id")[:1]
    rooms = Room.objects.filter(deleted_at__isnull=True).annotate(
        member_count=Coalesce(Subquery(member_count, output_field=IntegerField()), Value(0)),
        last_message_id=Subquery(last_message_id),
    )
    if user is None:
        return rooms
    unread = (
        message.objects.filter(
            room=OuterRef("pk"), id__gt=OuterRef("mine__last_read_message_id"), deleted_at__isnull=True
        )
        .exclude(author=user)
        .order_by()
        .values("room")
        .annotate(n=Count("id"))
        .values("n")
    )
    # Unread messages that @mention the user: the sidebar's mention badge.
    mentions = (
        message.objects.filter(
            room=OuterRef("pk"),
            id__gt=OuterRef("mine__last_read_message_id"),
            deleted_at__isnull=True,
            mentions=user,
        )
        .exclude(author=user)
        .order_by()
        .values("room")
        .annotate(n=Count("id"))
        .values("n")
    )
    return rooms.annotate(mine=FilteredRelation("memberships", condition=Q(memberships__user=user))).annotate(
        my_role=F("mine__role"),
        unread_count=Coalesce(Subquery(unread, output_field=IntegerField()), Value(0)),
        mention_count=Coalesce(Subquery(mentions, output_field=IntegerField()), Value(0)),
        last_read_message_id=Coalesce(F("mine__last_read_message_id"), Value(0)),
    )


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
    """Return the user's membership of a live room, or raise as API.md says outsiders are refused.

    Private rooms and DMs: NotFound. Public channels: Forbidden.
    """
    room_id = room if isinstance(room, int) else room.pk
    if not 0 < room_id < 2**63:
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


def roommates_among(*, user: User, user_ids: Iterable[int]) -> list[int]:
    """Return those of `user_ids` who share a live room with `user` (never `user`), ascending.

    Presence is only shown to people who share a room, as on the socket.
    """
    return sorted(
        Membership.objects.filter(user_id__in=set(user_ids), room_id__in=member_room_ids(user=user))
        .exclude(user_id=user.pk)
        .values_list("user_id", flat=True)
        .distinct()
    )
