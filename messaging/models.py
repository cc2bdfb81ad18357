from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q, Value

from rooms.models import Room


class Message(models.Model):
    """A message in a room. Deleting one keeps its row as a tombstone with no text."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="messages")
    body = models.TextField(blank=True)
    html = models.TextField(blank=True)
    # Chosen by the sending client so a retried send never makes a second copy.
    # NULL, not "", when absent: the unique constraint ignores NULLs.
    client_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replies")
    mentions = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="mentioned_in")
    created_at = models.DateTimeField(auto_now_add=True)
    edited_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # Threads (messaging.threads): a reply's parent is always the thread's root.
    # A root keeps its thread's summary, kept in step in each reply's own transaction.
    # Defaults in the database too: bulk loads (bench/history.py, index tests) insert rows without them.
    broadcast = models.BooleanField(default=False, db_default=False)
    reply_count = models.PositiveIntegerField(default=0, db_default=0)
    last_reply_id = models.BigIntegerField(null=True, blank=True)
    last_reply_at = models.DateTimeField(null=True, blank=True)
    # Ids of the authors of the newest live replies, newest first (at most THREAD_FACES).
    last_replier_ids = models.JSONField(default=list, db_default=Value([], output_field=models.JSONField()), blank=True)
    # Pins (messaging.pins).
    pinned_at = models.DateTimeField(null=True, blank=True)
    pinned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["room", "author", "client_id"],
                condition=Q(client_id__isnull=False),
                name="message_client_id_unique",
            ),
        ]
        indexes = [
            # History pages and unread counts: keyset on id within a room.
            models.Index(fields=["room", "id"], name="message_room_id"),
            # A thread's replies, its unread counts and its newest reply: keyset on id under the root.
            models.Index(fields=["parent", "id"], name="message_parent_id"),
            # A room's pinned messages, newest pin first.
            models.Index(fields=["room", "pinned_at"], condition=Q(pinned_at__isnull=False), name="message_room_pins"),
        ]
        # PostgreSQL also has a GIN index on to_tsvector('english', body) for
        # search (migration 0002).

    def __str__(self) -> str:
        return f"{self.id} in {self.room_id} by {self.author_id}"

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


class ThreadState(models.Model):
    """A user's relation to one thread: whether they follow it and how far they have read it."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="thread_states")
    root = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="thread_states")
    following = models.BooleanField(default=True)
    # Only ever moves forward (a conditional update), like a room's read marker.
    last_read_id = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "root"], name="thread_state_user_root_unique"),
        ]
        indexes = [
            # threads/: the threads one user follows.
            models.Index(fields=["user", "root"], condition=Q(following=True), name="thread_state_following"),
        ]

    def __str__(self) -> str:
        return f"user {self.user_id} on thread {self.root_id} (read to {self.last_read_id})"


class MessageEdit(models.Model):
    """A text a message had before an edit replaced it."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="edits")
    body = models.TextField()
    edited_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"edit of {self.message_id} at {self.edited_at:%Y-%m-%d %H:%M}"


class Reaction(models.Model):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="reactions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    emoji = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["message", "user", "emoji"], name="reaction_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.emoji} by {self.user_id} on {self.message_id}"


class Report(models.Model):
    """A member's report of a message, for the moderators' queue in the admin."""

    class Status(models.TextChoices):
        OPEN = "open"
        RESOLVED = "resolved"
        DISMISSED = "dismissed"

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="reports")
    reporter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=1000)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    handled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The moderation queue: open reports, oldest first.
            models.Index(fields=["status", "id"], name="report_queue"),
        ]

    def __str__(self) -> str:
        return f"report {self.id} on message {self.message_id} ({self.status})"
