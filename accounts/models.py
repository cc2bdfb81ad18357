from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractUser, UserManager
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower

# Usernames are what @mentions match: no dots or dashes at the ends, so
# "thanks @bob." mentions bob.
USERNAME_PATTERN = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,28}[A-Za-z0-9_])?"

# How an erased account appears wherever it took part (its messages, member lists).
ERASED_NAME = "Deleted user"

username_validator = RegexValidator(
    rf"^{USERNAME_PATTERN}\Z",
    "Use 1–30 letters, digits, underscores, dots or dashes, starting and ending with a letter, digit or underscore.",
)


class ChatUserManager(UserManager["User"]):
    def get_by_natural_key(self, username: str | None) -> User:
        # Log-ins are case-insensitive, matching the uniqueness rule below.
        return self.get(username__iexact=username)


class User(AbstractUser):
    """A person with an account. Usernames and emails are unique regardless of case."""

    username = models.CharField(
        "username",
        max_length=30,
        unique=True,
        validators=[username_validator],
        error_messages={"unique": "That username is taken."},
    )
    email = models.EmailField("email address")
    display_name = models.CharField(max_length=64, blank=True)
    # Set when the account's personal data was erased (accounts.services.user_erase).
    erased_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects: ClassVar[ChatUserManager] = ChatUserManager()  # type: ignore[assignment]

    USERNAME_FIELD = "username"
    REQUIRED_FIELDS = ["email"]

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("username"), name="user_username_ci_unique"),
            models.UniqueConstraint(Lower("email"), condition=~models.Q(email=""), name="user_email_ci_unique"),
        ]
        indexes = [
            # users/?q= searches username and display name by prefix/substring.
            models.Index(Lower("display_name"), name="user_display_name_lower"),
        ]

    def __str__(self) -> str:
        return self.username

    @property
    def shown_name(self) -> str:
        if self.erased_at is not None:
            return ERASED_NAME
        return self.display_name or self.username


class ModerationAction(models.Model):
    """One thing a moderator did, and why: the audit log shown in the admin.

    Written by the services themselves whenever someone acts on another
    person's account, message or membership, so no path can skip it. Rooms
    and messages are plain ids: accounts sits below rooms and messaging.
    """

    class Kind(models.TextChoices):
        MESSAGE_DELETE = "message.delete", "deleted a message"
        REACTION_REMOVE = "reaction.remove", "removed a reaction"
        ROOM_UPDATE = "room.update", "changed a room"
        ROOM_DELETE = "room.delete", "deleted a room"
        MEMBER_ADD = "member.add", "added a member"
        MEMBER_ROLE = "member.role", "changed a member's role"
        MEMBER_KICK = "member.kick", "removed a member"
        MEMBER_BAN = "member.ban", "banned from a room"
        MEMBER_UNBAN = "member.unban", "lifted a ban"
        USER_CREATE = "user.create", "created an account"
        USER_UPDATE = "user.update", "changed an account"
        USER_DEACTIVATE = "user.deactivate", "deactivated an account"
        USER_REACTIVATE = "user.reactivate", "reactivated an account"
        USER_ERASE = "user.erase", "erased an account's personal data"
        REPORT_RESOLVE = "report.resolve", "resolved a report"
        REPORT_DISMISS = "report.dismiss", "dismissed a report"

    created_at = models.DateTimeField(auto_now_add=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="moderation_actions"
    )
    # Kept when the account is deleted, so the log still says who.
    actor_username = models.CharField(max_length=150)
    action = models.CharField(max_length=32, choices=Kind.choices)
    target_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    target_username = models.CharField(max_length=150, blank=True)
    room_id = models.BigIntegerField(null=True, blank=True)
    message_id = models.BigIntegerField(null=True, blank=True)
    report_id = models.BigIntegerField(null=True, blank=True)
    # Where it was done: "admin" or "api".
    via = models.CharField(max_length=10, default="api")
    reason = models.TextField(blank=True)
    # What exactly changed, when the action alone does not say ("name: Lobby → Hall").
    detail = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            # The admin's log, newest first, filtered by action or by moderator.
            models.Index(fields=["action", "-id"], name="moderation_action_kind"),
            models.Index(fields=["actor", "-id"], name="moderation_action_actor"),
        ]

    def __str__(self) -> str:
        return f"{self.actor_username} {self.get_action_display()}"
