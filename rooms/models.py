from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Room(models.Model):
    """A channel (public or private) or a direct conversation between a set of people."""

    class Kind(models.TextChoices):
        CHANNEL = "channel"
        DIRECT = "direct"

    class Visibility(models.TextChoices):
        PUBLIC = "public"
        PRIVATE = "private"

    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.CHANNEL)
    name = models.CharField(max_length=80, blank=True)
    slug = models.SlugField(max_length=80, blank=True)
    topic = models.CharField(max_length=250, blank=True)
    visibility = models.CharField(max_length=10, choices=Visibility.choices, default=Visibility.PUBLIC)
    # The sorted member ids of a direct room ("3,8,12"), so dms/ finds the one
    # conversation for exactly that set of people.
    direct_key = models.CharField(max_length=500, null=True, blank=True, editable=False)  # noqa: DJ001
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Rooms are deleted softly so their members can still be told, on resume.
    deleted_at = models.DateTimeField(null=True, blank=True)

    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="rooms")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["slug"],
                condition=Q(kind="channel", deleted_at__isnull=True),
                name="room_live_channel_slug_unique",
            ),
            models.UniqueConstraint(
                fields=["direct_key"],
                condition=Q(kind="direct", deleted_at__isnull=True),
                name="room_live_direct_key_unique",
            ),
        ]
        indexes = [
            # rooms/public/ lists live public channels by id.
            models.Index(
                fields=["id"],
                condition=Q(kind="channel", visibility="public", deleted_at__isnull=True),
                name="room_public_channels",
            ),
        ]

    def __str__(self) -> str:
        if self.kind == self.Kind.DIRECT:
            return f"DM {self.direct_key or self.pk}"
        return f"#{self.slug or self.name}"

    @property
    def is_direct(self) -> bool:
        return self.kind == self.Kind.DIRECT

    @property
    def is_public_channel(self) -> bool:
        return self.kind == self.Kind.CHANNEL and self.visibility == self.Visibility.PUBLIC


class Membership(models.Model):
    """A user's place in a room: their role and how far they have read."""

    class Role(models.TextChoices):
        OWNER = "owner"
        ADMIN = "admin"
        MEMBER = "member"

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    joined_at = models.DateTimeField(auto_now_add=True)
    # The event that made this membership: events of the room from this id on
    # are the member's to replay.
    joined_event_id = models.BigIntegerField(null=True, blank=True)
    last_read_message_id = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "user"], name="membership_room_user_unique"),
        ]
        indexes = [
            # rooms/ and the socket's subscriptions: every room of one user.
            models.Index(fields=["user", "room"], name="membership_user_room"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.room} ({self.role})"

    @property
    def can_moderate(self) -> bool:
        return self.role in (self.Role.OWNER, self.Role.ADMIN)


class Ban(models.Model):
    """A user removed from a channel who may not join it again until unbanned."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="bans")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="bans")
    banned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "user"], name="ban_room_user_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user} banned from {self.room}"


class EventLogState(models.Model):
    """A single row: how far pruning has removed old events.

    A client resuming from a cursor below `pruned_through` may have missed
    events that no longer exist, so it is told to resync.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    pruned_through = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"events pruned through {self.pruned_through}"


class Event(models.Model):
    """One committed state change, in commit order, for live delivery and resume.

    Ids are assigned under a transaction-level lock (see `rooms.events`), so
    they become visible in id order and a client's cursor can never pass an
    event that is still to commit.
    """

    class Type(models.TextChoices):
        MESSAGE_NEW = "message.new"
        MESSAGE_UPDATED = "message.updated"
        ROOM_CREATED = "room.created"
        ROOM_UPDATED = "room.updated"
        ROOM_DELETED = "room.deleted"
        MEMBER_JOINED = "member.joined"
        MEMBER_LEFT = "member.left"
        MEMBER_ROLE = "member.role"
        READ = "read"

    id = models.BigAutoField(primary_key=True)
    type = models.CharField(max_length=32, choices=Type.choices)
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="events")
    # The user the event is about (joined, left, read…), if any.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Plain id, not a foreign key: messaging depends on rooms, not the reverse.
    message_id = models.BigIntegerField(null=True, blank=True)
    # Only `user` may see a private event (their read marker, their new role).
    private = models.BooleanField(default=False)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        indexes = [
            # Resume: a room's events after a cursor.
            models.Index(fields=["room", "id"], name="event_room_id"),
            # Resume: events about one user after a cursor.
            models.Index(fields=["user", "id"], name="event_user_id"),
            # Redaction when a message is deleted.
            models.Index(fields=["message_id"], name="event_message"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.type} room={self.room_id}"
