"""What a person wants to hear about while away, and what the notifier has decided and sent."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Preferences(models.Model):
    """A person's notification preferences (a row only once they change one; defaults otherwise)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    push = models.BooleanField(default=True)
    email = models.BooleanField(default=True)
    email_delay_seconds = models.PositiveIntegerField(default=120)
    dnd_until = models.DateTimeField(null=True, blank=True)
    share_read_receipts = models.BooleanField(default=True)
    timezone = models.CharField(max_length=64, default="UTC")

    class Meta:
        verbose_name_plural = "preferences"

    def __str__(self) -> str:
        return f"preferences of {self.user_id}"


class NotifierCursor(models.Model):
    """How far the notifier has read the event record: one row, moved in the transaction of each batch."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    position = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"notifier at event {self.position}"


class Notification(models.Model):
    """The notifier's decision that one person should hear of one message, and what came of it.

    Written once per (person, message), in the same transaction as the
    notifier's cursor, so a crash or a restart neither loses nor repeats it.
    """

    class Reason(models.TextChoices):
        DM = "dm"
        MENTION = "mention"
        CHANNEL = "channel"  # @channel, @everyone, or @here while online
        THREAD = "thread"  # a reply in a thread the person follows
        ALL = "all"  # the room is at level `all`

    class State(models.TextChoices):
        PENDING = "pending"  # waiting for its delay
        SENT = "sent"
        SKIPPED = "skipped"  # read, deleted, edited away, muted… by then
        NONE = "none"  # this channel is off for the person

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    room = models.ForeignKey("rooms.Room", on_delete=models.CASCADE, related_name="+")
    message = models.ForeignKey("messaging.Message", on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=10, choices=Reason.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    push_state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    # A dismiss push has gone to the person's devices (they read it somewhere).
    dismissed = models.BooleanField(default=False)
    email_state = models.CharField(max_length=10, choices=State.choices, default=State.NONE)
    email_due_at = models.DateTimeField(null=True, blank=True)
    email_batch = models.ForeignKey(
        "notifications.EmailBatch", null=True, blank=True, on_delete=models.SET_NULL, related_name="notifications"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "message"], name="notification_user_message_unique"),
        ]
        indexes = [
            # The check job: one message's notifications.
            models.Index(fields=["message"], name="notification_message"),
            # Dismissal on read: a person's sent pushes in a room.
            models.Index(fields=["user", "room", "message"], name="notification_user_room"),
            # Pruning settled notifications by age.
            models.Index(fields=["created_at"], name="notification_created"),
            # The email batcher: pending emails by when they are due.
            models.Index(
                fields=["email_due_at"],
                condition=models.Q(email_state="pending"),
                name="notification_email_due",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reason} {self.message_id} for {self.user_id}"


class PushSubscription(models.Model):
    """One browser's Web Push subscription (RFC 8030): where to post, and the keys to encrypt for."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    endpoint = models.URLField(max_length=2000, unique=True)
    p256dh = models.CharField(max_length=100)
    auth = models.CharField(max_length=50)
    created_at = models.DateTimeField(auto_now_add=True)
    last_success_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user"], name="push_subscription_user")]

    def __str__(self) -> str:
        return f"push subscription {self.pk} of {self.user_id}"


class EmailBatch(models.Model):
    """One missed-messages email: the notifications it gathers, written with the job that sends it.

    `sent_at` is set once the SMTP server accepted it; a second attempt of
    the job then sends nothing.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # Why it was not sent, if it was not (the address refused, the account gone…).
    failure = models.CharField(max_length=300, blank=True)

    class Meta:
        verbose_name_plural = "email batches"

    def __str__(self) -> str:
        return f"email {self.pk} to {self.user_id}"
