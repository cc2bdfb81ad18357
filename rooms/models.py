from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class NotifyLevel(models.TextChoices):
    """How much of a room a member hears about while away."""

    ALL = "all"
    MENTIONS = "mentions"
    NONE = "none"


def default_notify_level(kind: str) -> str:
    """DMs notify every message; channels only mentions, until the member chooses otherwise."""
    return NotifyLevel.ALL if kind == Room.Kind.DIRECT else NotifyLevel.MENTIONS


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
    # Every new account joins the default channels (public ones only) at registration.
    is_default = models.BooleanField(
        "default channel",
        default=False,
        help_text="Every new account joins it when it registers (public channels only).",
    )

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
            # Registration joins the live default channels.
            models.Index(
                fields=["id"],
                condition=Q(kind="channel", is_default=True, deleted_at__isnull=True),
                name="room_default_channels",
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
    # Notification settings for this room ("" = the default for the room's kind;
    # the notifications app reads and writes them).
    notify_level = models.CharField(max_length=10, blank=True, default="")
    muted_until = models.DateTimeField(null=True, blank=True)

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


# The event record's tables live with the rest of the event record; imported
# here so Django finds them among this app's models.
from rooms.events.models import Event, EventLogState, PrunedEventMark  # noqa: E402, F401
