"""The event record's tables: the events themselves and how far pruning has gone."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class EventLogState(models.Model):
    """A single row: how far pruning has removed old events.

    A client resuming from a cursor below `pruned_through` may have missed
    events that no longer exist, so it is told to resync.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    pruned_through = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"events pruned through {self.pruned_through}"


class PrunedEventMark(models.Model):
    """The newest pruned event of one room (not counting private ones), or about one user.

    A cursor below the pruned-through mark has missed something only if one
    of its user's marks lies above it: the events of their rooms from their
    joining, and the events about them. Without the marks every such cursor
    would have to resync, and the cursor of a user whose rooms were quiet
    for longer than the retention would after every prune.
    """

    room = models.OneToOneField("rooms.Room", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    through = models.BigIntegerField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(room__isnull=True) ^ models.Q(user__isnull=True), name="pruned_mark_room_xor_user"
            ),
        ]

    def __str__(self) -> str:
        owner = f"room {self.room_id}" if self.room_id is not None else f"user {self.user_id}"
        return f"{owner} pruned through {self.through}"


class Event(models.Model):
    """One committed state change, in commit order, for live delivery and resume.

    Ids are assigned under a transaction-level lock (see `rooms.events.record`), so
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
        THREAD_READ = "thread.read"
        USER_UPDATED = "user.updated"

    id = models.BigAutoField(primary_key=True)
    type = models.CharField(max_length=32, choices=Type.choices)
    room = models.ForeignKey("rooms.Room", on_delete=models.CASCADE, related_name="events")
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
