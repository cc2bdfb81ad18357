"""Every change to rooms and memberships: one function per action.

Each validates, writes in one transaction, records exactly one event (the
last write, see `rooms.events`) and leaves the broadcast to on_commit. The
REST views, the WebSocket consumer and the admin all call these.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Case, When
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import ModerationAction, User
from accounts.payloads import user_payload
from accounts.services import moderation_record
from core.errors import Conflict, Forbidden, Invalid, NotFound
from rooms.events import Event, event_record
from rooms.models import Ban, Membership, Room
from rooms.payloads import room_payload
from rooms.selectors import (
    attach_direct_members,
    is_banned,
    membership_require,
    newest_message_id,
    rooms_annotated,
)

DIRECT_ROOM_MAX_PEOPLE = 16
NAME_MAX = 80
TOPIC_MAX = 250

Role = Membership.Role


# --- Helpers ---------------------------------------------------------------------


def _shared_room_payload(room: Room) -> dict[str, Any]:
    """Return the parts of a room's payload that are the same for every member.

    `my_role` and the read state (`unread_count`, `mention_count`,
    `last_read_message_id`) differ per reader; the realtime layer fills in
    `my_role` for each recipient.
    """
    fresh = rooms_annotated(None).get(pk=room.pk)
    attach_direct_members([fresh])
    payload: dict[str, Any] = dict(room_payload(fresh))
    payload["my_role"] = None
    payload["unread_count"] = 0
    payload["mention_count"] = 0
    payload["last_read_message_id"] = 0
    return payload


def _clean_name(name: str) -> tuple[str, str]:
    name = (name or "").strip()
    if not name:
        raise Invalid({"name": "Give the channel a name."})
    if len(name) > NAME_MAX:
        raise Invalid({"name": f"Use at most {NAME_MAX} characters."})
    slug = slugify(name, allow_unicode=True)[:NAME_MAX]
    if not slug:
        raise Invalid({"name": "The name needs at least one letter or digit."})
    return name, slug


def _clean_topic(topic: str) -> str:
    topic = (topic or "").strip()
    if len(topic) > TOPIC_MAX:
        raise Invalid({"topic": f"Use at most {TOPIC_MAX} characters."})
    return topic


def _slug_taken(slug: str, *, excluding: int | None = None) -> bool:
    rooms = Room.objects.filter(kind=Room.Kind.CHANNEL, slug=slug, deleted_at__isnull=True)
    if excluding is not None:
        rooms = rooms.exclude(pk=excluding)
    return rooms.exists()


def _require_moderator(membership: Membership) -> None:
    # Room settings, adding, kicking and banning are for the room's owners and admins.
    if not membership.can_moderate or membership.room.is_direct:
        raise Forbidden("Only the room's owners and admins may do this.")


def _require_outranks(actor: Membership, target: Membership) -> None:
    # Admins may act on plain members only; owners on anyone but themselves.
    if actor.role == Role.OWNER:
        return
    if target.role != Role.MEMBER:
        raise Forbidden("Admins may only act on members; ask an owner.")


def _direct_key(user_ids: set[int]) -> str:
    return ",".join(str(user_id) for user_id in sorted(user_ids))


def _member_event(
    *, type: Event.Type, room: Room, user: User, actor: User | None, extra: dict[str, Any] | None = None
) -> Event:
    return event_record(
        type=type,
        room=room,
        user_id=user.pk,
        actor_id=actor.pk if actor else None,
        payload={"user": user_payload(user), "room": _shared_room_payload(room), **(extra or {})},
    )


def _remove_membership(membership: Membership, *, actor: User | None, reason: str) -> Event:
    """Delete a membership, record who left and why, and keep the room owned."""
    room = membership.room
    user = membership.user
    was_owner = membership.role == Role.OWNER
    membership.delete()
    if room.is_direct:
        _rekey_direct_room(room, refuse_clash=False)
    event = _member_event(type=Event.Type.MEMBER_LEFT, room=room, user=user, actor=actor, extra={"reason": reason})
    if was_owner and room.kind == Room.Kind.CHANNEL:
        _hand_over_ownership(room, actor=actor)
    return event


def _hand_over_ownership(room: Room, *, actor: User | None) -> Membership | None:
    """Give a channel left without an active owner to its longest-standing active admin, else member.

    The heir is told (member.role: their sockets get the room with `my_role`
    "owner"). Return the heir, or None when the channel keeps an owner or
    has no active member left.
    """
    active = room.memberships.filter(user__is_active=True)
    if active.filter(role=Role.OWNER).exists():
        return None
    heir = (
        active.select_related("user")
        # Admins first, then by seniority.
        .order_by(Case(When(role=Role.ADMIN, then=0), default=1), "joined_at", "id")
        .first()
    )
    if heir is None:
        return None
    heir.role = Role.OWNER
    heir.save(update_fields=["role"])
    _member_event(type=Event.Type.MEMBER_ROLE, room=room, user=heir.user, actor=actor, extra={"role": Role.OWNER})
    return heir


def ownership_hand_over_for(*, user: User, actor: User | None = None) -> list[Membership]:
    """Hand on every live channel that `user` (being deactivated or erased) leaves without an active owner.

    Called by accounts.services.user_deactivate, in its transaction, through
    the hook rooms registers at start-up; return the heirs.
    """
    owned = Room.objects.filter(
        kind=Room.Kind.CHANNEL, deleted_at__isnull=True, memberships__user=user, memberships__role=Role.OWNER
    ).order_by("id")
    heirs = []
    for room in owned.select_for_update():
        heir = _hand_over_ownership(room, actor=actor)
        if heir is not None:
            heirs.append(heir)
    return heirs


def _rekey_direct_room(room: Room, *, refuse_clash: bool) -> None:
    """Point a direct room's key at its current members.

    If another live conversation already belongs to exactly these people,
    adding someone is refused (`refuse_clash`); after a leave this room goes
    unkeyed instead, so the other one stays findable.
    """
    member_ids = set(room.memberships.values_list("user_id", flat=True))
    key = _direct_key(member_ids) if member_ids else None
    if (
        key
        and Room.objects.filter(kind=Room.Kind.DIRECT, direct_key=key, deleted_at__isnull=True)
        .exclude(pk=room.pk)
        .exists()
    ):
        if refuse_clash:
            raise Conflict("A conversation with exactly these people already exists.")
        key = None
    room.direct_key = key
    room.save(update_fields=["direct_key"])


# --- Channels --------------------------------------------------------------------


ROOM_CREATE_MEMBERS_MAX = 100
GENERAL_CHANNEL = "general"


@transaction.atomic
def room_create(
    *,
    creator: User,
    name: str,
    topic: str = "",
    visibility: str = Room.Visibility.PUBLIC,
    members: list[int] | None = None,
    is_default: bool = False,
) -> Room:
    """Create a channel owned by its creator, with its first `members` (user ids) already in it.

    Each first member joins as a member would (member.joined is recorded), in
    the same transaction: the channel never exists without them. `is_default`
    is for the server's own #general (`account_welcome`); staff mark others
    with `room_update`.
    """
    name, slug = _clean_name(name)
    topic = _clean_topic(topic)
    if visibility not in Room.Visibility.values:
        raise Invalid({"visibility": "Use 'public' or 'private'."})
    first_members = _first_members(creator, members or [])
    if _slug_taken(slug):
        raise Invalid({"name": "A channel with this name already exists."})
    room = Room.objects.create(
        kind=Room.Kind.CHANNEL,
        name=name,
        slug=slug,
        topic=topic,
        visibility=visibility,
        created_by=creator,
        is_default=is_default and visibility == Room.Visibility.PUBLIC,
    )
    membership = Membership.objects.create(room=room, user=creator, role=Role.OWNER)
    event = _member_event(
        type=Event.Type.ROOM_CREATED, room=room, user=creator, actor=creator, extra={"role": Role.OWNER}
    )
    membership.joined_event_id = event.pk
    membership.save(update_fields=["joined_event_id"])
    for user in first_members:
        _membership_add(room=room, user=user, actor=creator)
    return room


def _first_members(creator: User, user_ids: list[int]) -> list[User]:
    """Return the active accounts a new channel starts with, or refuse naming the ids that are not one."""
    wanted = list(dict.fromkeys(user_id for user_id in user_ids if user_id != creator.pk))
    if len(wanted) > ROOM_CREATE_MEMBERS_MAX:
        raise Invalid({"members": f"Add at most {ROOM_CREATE_MEMBERS_MAX} people at creation; add more later."})
    found = {user.pk: user for user in User.objects.filter(pk__in=wanted, is_active=True)}
    unknown = [user_id for user_id in wanted if user_id not in found]
    if unknown:
        raise Invalid({"members": "No such users: " + ", ".join(str(user_id) for user_id in unknown) + "."})
    return [found[user_id] for user_id in wanted]


def account_welcome(user: User, first_account: bool) -> list[Membership]:
    """Seat a new account in the default channels; the server's first account opens #general first.

    Runs in the registration's transaction (an accounts registration hook).
    Joining goes through `room_join`, so each join is a recorded member.joined.
    #general is opened only for the first account (the server's new admin,
    its owner) and only if no live channel has that name: registering again,
    or on a server whose people already made their own, never adds a second.
    """
    if first_account and not _slug_taken(GENERAL_CHANNEL):
        room_create(
            creator=user,
            name=GENERAL_CHANNEL,
            topic="Everyone is here: news and chatter for the whole team",
            is_default=True,
        )
    defaults = Room.objects.filter(
        kind=Room.Kind.CHANNEL, visibility=Room.Visibility.PUBLIC, is_default=True, deleted_at__isnull=True
    ).exclude(memberships__user=user)
    return [room_join(user=user, room=room)[0] for room in defaults.order_by("id")]


@transaction.atomic
def room_update(
    *,
    actor: User,
    room: Room,
    name: str | None = None,
    topic: str | None = None,
    visibility: str | None = None,
    is_default: bool | None = None,
    site_moderator: bool = False,
    reason: str = "",
    via: str = "api",
) -> Room:
    """Rename a channel, change its topic, its visibility or whether it is a default one; members get room.updated.

    The room's owners and admins act over the API; staff from the admin with
    `site_moderator`, logged with their reason. Only staff choose the default
    channels (those every new account joins), and those must be public.
    """
    if is_default is not None and not actor.is_staff:
        raise Forbidden("Only the server's staff may choose the default channels.")
    _acting_moderator(actor, room, site_moderator=site_moderator)
    room = Room.objects.select_for_update().get(pk=room.pk)
    changed: list[str] = []
    detail: list[str] = []
    if name is not None:
        name, slug = _clean_name(name)
        if slug != room.slug and _slug_taken(slug, excluding=room.pk):
            raise Invalid({"name": "A channel with this name already exists."})
        if (name, slug) != (room.name, room.slug):
            detail.append(f"name: {room.name!r} → {name!r}")
            room.name, room.slug = name, slug
            changed += ["name", "slug"]
    if topic is not None:
        topic = _clean_topic(topic)
        if topic != room.topic:
            detail.append(f"topic: {room.topic!r} → {topic!r}")
            room.topic = topic
            changed.append("topic")
    if visibility is not None:
        if visibility not in Room.Visibility.values:
            raise Invalid({"visibility": "Use 'public' or 'private'."})
        if visibility != room.visibility:
            detail.append(f"visibility: {room.visibility} → {visibility}")
            room.visibility = visibility
            changed.append("visibility")
    if is_default is not None and is_default != room.is_default:
        detail.append(f"default channel: {room.is_default} → {is_default}")
        room.is_default = is_default
        changed.append("is_default")
    if room.is_default and room.visibility != Room.Visibility.PUBLIC:
        # New accounts join default channels as anyone joins a public one.
        raise Invalid({"is_default": "Only a public channel can be a default channel."})
    if not changed:
        return room
    room.save(update_fields=changed)
    if site_moderator:
        moderation_record(
            actor=actor,
            action=ModerationAction.Kind.ROOM_UPDATE,
            room_id=room.pk,
            reason=reason,
            via=via,
            detail="; ".join(detail),
        )
    event_record(
        type=Event.Type.ROOM_UPDATED,
        room=room,
        actor_id=actor.pk,
        payload={"room": _shared_room_payload(room)},
    )
    return room


@transaction.atomic
def room_delete(*, actor: User, room: Room, site_moderator: bool = False, reason: str = "", via: str = "api") -> None:
    """Delete a channel: members are told, its history is no longer served (but kept).

    Its owners delete it over the API; staff from the admin with `site_moderator`, logged with their reason.
    """
    if site_moderator:
        _acting_moderator(actor, room, site_moderator=True)
    else:
        membership = membership_require(user=actor, room=room)
        # Deleting a room is for its owners alone.
        if membership.role != Role.OWNER or room.is_direct:
            raise Forbidden("Only the room's owner may delete it.")
    room = Room.objects.select_for_update().get(pk=room.pk)
    room.deleted_at = timezone.now()
    room.save(update_fields=["deleted_at"])
    if site_moderator:
        moderation_record(
            actor=actor,
            action=ModerationAction.Kind.ROOM_DELETE,
            room_id=room.pk,
            reason=reason,
            via=via,
            detail=str(room),
        )
    event_record(type=Event.Type.ROOM_DELETED, room=room, actor_id=actor.pk, payload={"room": room.pk})


# --- Memberships -------------------------------------------------------------------


@transaction.atomic
def room_join(*, user: User, room: Room) -> tuple[Membership, bool]:
    """Join a public channel; return the membership and whether it is new."""
    live_room = Room.objects.filter(pk=room.pk, deleted_at__isnull=True).first()
    if live_room is None:
        raise NotFound("Room not found.")
    existing = Membership.objects.filter(room=live_room, user=user).first()
    if existing is not None:
        return existing, False
    # Only public channels can be joined; anything else looks missing to outsiders.
    if not live_room.is_public_channel:
        raise NotFound("Room not found.")
    # A ban keeps the user out until an owner or admin lifts it.
    if is_banned(room=live_room, user=user):
        raise Forbidden("You are banned from this room.")
    return _membership_add(room=live_room, user=user, actor=user), True


def _membership_add(*, room: Room, user: User, actor: User) -> Membership:
    role = Role.MEMBER
    # A newcomer never takes over a channel that still has active members
    # (one of them inherits it first); one left with none is adopted by
    # whoever joins next, so it never ends up without someone who can run it.
    if (
        room.kind == Room.Kind.CHANNEL
        and _hand_over_ownership(room, actor=None) is None
        and not room.memberships.filter(user__is_active=True).exists()
    ):
        role = Role.OWNER
    # A newcomer starts with everything before them read: history is there to
    # scroll, not hundreds of unread messages and mentions never meant for them.
    membership = Membership.objects.create(
        room=room, user=user, role=role, last_read_message_id=newest_message_id(room_id=room.pk)
    )
    if room.is_direct:
        _rekey_direct_room(room, refuse_clash=True)
    event = _member_event(
        type=Event.Type.MEMBER_JOINED,
        room=room,
        user=user,
        actor=actor,
        extra={"role": membership.role, "last_read_message_id": membership.last_read_message_id},
    )
    membership.joined_event_id = event.pk
    membership.save(update_fields=["joined_event_id"])
    return membership


@transaction.atomic
def room_leave(*, user: User, room: Room) -> None:
    """Leave a room. A channel's last owner hands ownership on."""
    membership = membership_require(user=user, room=room)
    _remove_membership(membership, actor=user, reason="left")


@transaction.atomic
def member_add(
    *, actor: User, room: Room, user_id: int, site_moderator: bool = False, reason: str = "", via: str = "api"
) -> tuple[Membership, bool]:
    """Add a user to a room; return the membership and whether it is new.

    Adding someone to a 1:1 conversation (two people or fewer) leaves it as it
    is and opens a group conversation of everyone, without the history: the
    returned membership is then in that other room. Staff add people to
    channels from the admin with `site_moderator`, logged with their reason.
    """
    if site_moderator:
        _acting_moderator(actor, room, site_moderator=True)
        room = Room.objects.get(pk=room.pk)
    else:
        actor_membership = membership_require(user=actor, room=room)
        room = actor_membership.room
        # Channels: owners and admins add people. DMs: any member may.
        if not room.is_direct and not actor_membership.can_moderate:
            raise Forbidden("Only the room's owners and admins may add people.")
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        raise Invalid({"user": "No such user."})
    existing = Membership.objects.filter(room=room, user=user).first()
    if existing is not None:
        return existing, False
    member_ids = set(room.memberships.values_list("user_id", flat=True))
    if room.is_direct and len(member_ids) <= 2:
        # What two people said to each other stays theirs: the newcomer gets a new room.
        group, created = direct_open(creator=actor, user_ids=sorted(member_ids | {user.pk}))
        return Membership.objects.select_related("room", "user").get(room=group, user=user), created
    if room.is_direct and len(member_ids) >= DIRECT_ROOM_MAX_PEOPLE:
        raise Invalid({"user": f"A direct conversation holds at most {DIRECT_ROOM_MAX_PEOPLE} people."})
    if is_banned(room=room, user=user):
        raise Invalid({"user": "This user is banned from the room; lift the ban first."})
    if site_moderator:
        moderation_record(
            actor=actor,
            action=ModerationAction.Kind.MEMBER_ADD,
            target_user=user,
            room_id=room.pk,
            reason=reason,
            via=via,
        )
    return _membership_add(room=room, user=user, actor=actor), True


@transaction.atomic
def member_set_role(
    *,
    actor: User,
    room: Room,
    user_id: int,
    role: str,
    site_moderator: bool = False,
    reason: str = "",
    via: str = "api",
) -> Membership:
    """Change a member's role; only owners may (or staff, from the admin), and a channel always keeps an owner."""
    if site_moderator:
        _acting_moderator(actor, room, site_moderator=True)
    else:
        actor_membership = membership_require(user=actor, room=room)
        # Promotions and demotions are for owners alone.
        if actor_membership.role != Role.OWNER or actor_membership.room.is_direct:
            raise Forbidden("Only the room's owner may change roles.")
    if role not in Role.values:
        raise Invalid({"role": "Use 'owner', 'admin' or 'member'."})
    target = Membership.objects.select_related("user", "room").filter(room=room, user_id=user_id).first()
    if target is None:
        raise NotFound("That user is not a member of this room.")
    if target.role == role:
        return target
    other_owners = room.memberships.filter(role=Role.OWNER, user__is_active=True).exclude(pk=target.pk)
    if target.role == Role.OWNER and not other_owners.exists():
        raise Invalid({"role": "A channel needs an owner: make someone else owner first."})
    if site_moderator:
        moderation_record(
            actor=actor,
            action=ModerationAction.Kind.MEMBER_ROLE,
            target_user=target.user,
            room_id=room.pk,
            reason=reason,
            via=via,
            detail=f"{target.role} → {role}",
        )
    target.role = role
    target.save(update_fields=["role"])
    _member_event(type=Event.Type.MEMBER_ROLE, room=target.room, user=target.user, actor=actor, extra={"role": role})
    return target


@transaction.atomic
def member_kick(
    *, actor: User, room: Room, user_id: int, site_moderator: bool = False, reason: str = "", via: str = "api"
) -> None:
    """Remove a member from a channel; they may join again (unlike a ban).

    Their sockets get room.removed and nothing more from the room. The room's
    owners and admins kick over the API; staff from the admin with `site_moderator`.
    """
    actor_membership = _acting_moderator(actor, room, site_moderator=site_moderator)
    if user_id == actor.pk:
        raise Invalid({"user": "Use leave to remove yourself."})
    target = Membership.objects.select_related("user", "room").filter(room=room, user_id=user_id).first()
    if target is None:
        raise NotFound("That user is not a member of this room.")
    if actor_membership is not None:
        _require_outranks(actor_membership, target)
    moderation_record(
        actor=actor,
        action=ModerationAction.Kind.MEMBER_KICK,
        target_user=target.user,
        room_id=room.pk,
        reason=reason,
        via=via,
    )
    _remove_membership(target, actor=actor, reason="kicked")


def _acting_moderator(actor: User, room: Room, *, site_moderator: bool) -> Membership | None:
    """Return the actor's membership as one of the room's owners or admins, or None for staff acting site-wide."""
    if site_moderator:
        # Staff moderate every channel from the admin, whether they are in it or not.
        if not actor.is_staff:
            raise Forbidden("Only staff may moderate rooms they do not run.")
        if not Room.objects.filter(pk=room.pk, deleted_at__isnull=True).exists():
            raise NotFound("Room not found.")
        if room.is_direct:
            # A conversation between people has no roles, bans or settings to run.
            raise Invalid("Direct conversations are not moderated; only channels are.")
        return None
    membership = membership_require(user=actor, room=room)
    _require_moderator(membership)
    return membership


@transaction.atomic
def member_ban(
    *, actor: User, room: Room, user_id: int, reason: str = "", site_moderator: bool = False, via: str = "api"
) -> Ban:
    """Ban a user from a channel: they are removed now and cannot join again.

    The room's owners and admins ban over the API; staff ban from the admin
    with `site_moderator`. Every ban goes into the moderation log.
    """
    actor_membership = _acting_moderator(actor, room, site_moderator=site_moderator)
    room = actor_membership.room if actor_membership is not None else Room.objects.get(pk=room.pk)
    if user_id == actor.pk:
        raise Invalid({"user": "You cannot ban yourself."})
    if len(reason) > 500:
        raise Invalid({"reason": "Use at most 500 characters."})
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        raise Invalid({"user": "No such user."})
    target = Membership.objects.select_related("user", "room").filter(room=room, user=user).first()
    if target is not None and actor_membership is not None:
        _require_outranks(actor_membership, target)
    ban, created = Ban.objects.get_or_create(
        room=room, user=user, defaults={"banned_by": actor, "reason": reason.strip()}
    )
    if created or target is not None:
        moderation_record(
            actor=actor,
            action=ModerationAction.Kind.MEMBER_BAN,
            target_user=user,
            room_id=room.pk,
            reason=reason,
            via=via,
        )
    if target is not None:
        _remove_membership(target, actor=actor, reason="banned")
    return ban


@transaction.atomic
def member_unban(
    *, actor: User, room: Room, user_id: int, reason: str = "", site_moderator: bool = False, via: str = "api"
) -> None:
    """Lift a ban; the user may join again but is not added back."""
    _acting_moderator(actor, room, site_moderator=site_moderator)
    bans = Ban.objects.select_related("user").filter(room=room, user_id=user_id)
    ban = bans.first()
    if ban is None:
        raise NotFound("That user is not banned from this room.")
    bans.delete()
    moderation_record(
        actor=actor,
        action=ModerationAction.Kind.MEMBER_UNBAN,
        target_user=ban.user,
        room_id=room.pk,
        reason=reason,
        via=via,
    )


# --- People ---------------------------------------------------------------------------------


def user_update_announce(user: User) -> list[Event]:
    """Tell the people who share a room with `user` of their new name: one `user.updated` per room.

    Runs inside the profile change's transaction, as its last writes
    (`accounts.services.user_update_profile` calls it through the listener
    RoomsConfig registers). One event per room, in room order, so that
    replay decides who may see it exactly as for any event of a room; every
    one carries the same `change`, and a socket passes on only the first it
    may see (`realtime.delivery.event_frame`): one frame per socket.
    """
    room_ids = sorted(
        Membership.objects.filter(user=user, room__deleted_at__isnull=True).values_list("room_id", flat=True)
    )
    payload = {"user": user_payload(user), "change": uuid.uuid4().hex}
    return [
        event_record(type=Event.Type.USER_UPDATED, room=room_id, user_id=user.pk, actor_id=user.pk, payload=payload)
        for room_id in room_ids
    ]


# --- Direct conversations --------------------------------------------------------------


@transaction.atomic
def direct_open(*, creator: User, user_ids: list[int]) -> tuple[Room, bool]:
    """Return the direct room for exactly these people plus the creator, creating it if needed."""
    people = set(user_ids) | {creator.pk}
    if len(people) > DIRECT_ROOM_MAX_PEOPLE:
        raise Invalid({"users": f"A direct conversation holds at most {DIRECT_ROOM_MAX_PEOPLE} people."})
    found = set(User.objects.filter(pk__in=people, is_active=True).values_list("pk", flat=True))
    missing = sorted(people - found)
    if missing:
        raise Invalid({"users": f"No such user: {', '.join(map(str, missing))}."})
    key = _direct_key(people)
    existing = Room.objects.filter(kind=Room.Kind.DIRECT, direct_key=key, deleted_at__isnull=True).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            room = Room.objects.create(
                kind=Room.Kind.DIRECT, visibility=Room.Visibility.PRIVATE, direct_key=key, created_by=creator
            )
    except IntegrityError:
        # Someone opened the same conversation a moment ago.
        return Room.objects.get(kind=Room.Kind.DIRECT, direct_key=key, deleted_at__isnull=True), False
    Membership.objects.bulk_create(
        [Membership(room=room, user_id=user_id, role=Role.MEMBER) for user_id in sorted(people)]
    )
    event = _member_event(
        type=Event.Type.ROOM_CREATED, room=room, user=creator, actor=creator, extra={"role": Role.MEMBER}
    )
    Membership.objects.filter(room=room).update(joined_event_id=event.pk)
    return room, True
