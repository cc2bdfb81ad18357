from __future__ import annotations

from typing import ClassVar

from django.contrib.auth.models import AbstractUser, UserManager
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower

# Usernames are what @mentions match: no dots or dashes at the ends, so
# "thanks @bob." mentions bob.
USERNAME_PATTERN = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,28}[A-Za-z0-9_])?"

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
        return self.display_name or self.username
