from __future__ import annotations

import uuid
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractUser, UserManager
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils.crypto import salted_hmac

from accounts.names import username_key, username_skeleton

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
        """Return the account a log-in names: compared as `username_key`, as the throttle counts it.

        Stored usernames are ASCII, where that key is the lower case, so the
        lookup uses the case-insensitive unique index. A name that folds to
        something else (`ALıCE`) matches nobody, and `ſtaffer` is staffer.
        """
        return self.alias(username_lower=Lower("username")).get(username_lower=username_key(username or ""))


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
    # What the username looks like (accounts.names): a new name may not look like an existing one.
    username_skeleton = models.CharField(max_length=64, editable=False, db_index=True, default="")
    # Raised to end every sign-in at once (sign out everywhere, a new password):
    # tokens carry the value they were minted under (accounts.tokens), and
    # browser sessions hold a hash that includes it.
    token_version = models.PositiveIntegerField(default=0)
    # False for an account registered with EMAIL_VERIFICATION=1 until its owner
    # follows the emailed link (accounts.email_verification); it cannot sign in before.
    email_verified = models.BooleanField(default=True)

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

    def save(self, *args: Any, **kwargs: Any) -> None:
        # A derived column: kept with the username on every path (services, admin, createsuperuser).
        self.username_skeleton = username_skeleton(self.username)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "username" in update_fields:
            kwargs["update_fields"] = {*update_fields, "username_skeleton"}
        super().save(*args, **kwargs)

    @property
    def shown_name(self) -> str:
        if self.erased_at is not None:
            return ERASED_NAME
        return self.display_name or self.username

    def _get_session_auth_hash(self, secret: str | None = None) -> str:
        # Django keeps a session only while this hash matches the one stored at log-in,
        # so raising token_version ends every browser session too. At version 0 the
        # hash is Django's own, so sessions made before the version existed stay valid.
        if self.token_version == 0:
            return super()._get_session_auth_hash(secret=secret)  # type: ignore[misc]  # missing from the stubs
        key_salt = "accounts.User.get_session_auth_hash"
        value = f"{self.password}\x00{self.token_version}"
        return salted_hmac(key_salt, value, secret=secret, algorithm="sha256").hexdigest()


class TokenFamily(models.Model):
    """One sign-in through the API: the refresh tokens that descend from one log-in by rotation.

    Every access and refresh token names its family (accounts.tokens).
    Revoking the family (log-out of that sign-in, or a refresh token used
    twice, a sign of theft) stops all of them at once, access tokens included.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="token_families")
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Where the sign-in began, for the profile's "where you're signed in".
    user_agent = models.CharField(max_length=300, blank=True, default="")
    ip = models.GenericIPAddressField(null=True, blank=True)
    # The user's token_version when it began: a later sign-out everywhere ended it.
    version = models.PositiveIntegerField(default=0)
    # The last refresh: a sign-in unused for longer than a refresh token lives is over.
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "token families"
        indexes = [models.Index(fields=["user", "-created_at"], name="token_family_user")]

    def __str__(self) -> str:
        return f"{self.id} of user {self.user_id}{' (revoked)' if self.revoked_at else ''}"


# --- Two-factor sign-in (accounts.mfa) -------------------------------------------------


class TotpDevice(models.Model):
    """A person's authenticator app: the shared TOTP secret, active once a code confirmed it."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="totp_device")
    # Base32, as authenticator apps take it; the server must read it back to check codes.
    secret = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    # The time step of the last code accepted: that code and older ones are refused (no replay).
    last_step = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"authenticator of user {self.user_id}{'' if self.confirmed_at else ' (not confirmed)'}"


class RecoveryCode(models.Model):
    """One single-use recovery code, kept only as a keyed hash (accounts.mfa.recovery_code_hash)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="recovery_codes")
    code_hash = models.CharField(max_length=64)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "code_hash"], name="recovery_code_unique")]

    def __str__(self) -> str:
        return f"recovery code {self.pk} of user {self.user_id}{' (used)' if self.used_at else ''}"


class Passkey(models.Model):
    """A WebAuthn credential (a passkey, a security key): a second factor, or a sign-in alone (accounts.passkeys)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="passkeys")
    name = models.CharField(max_length=64)
    # The authenticator's id for it, base64url: how an assertion names the key it was made with.
    credential_id = models.CharField(max_length=1400, unique=True)
    public_key = models.BinaryField()
    # The authenticator's signature counter: one going backwards means a cloned key.
    sign_count = models.BigIntegerField(default=0)
    transports = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"passkey {self.name!r} of user {self.user_id}"


class SecurityLogEntry(models.Model):
    """Something that happened to an account's sign-in, shown to its owner in the profile."""

    class Kind(models.TextChoices):
        SIGN_IN = "sign_in", "signed in"
        NEW_DEVICE = "new_device", "signed in from a new device"
        MFA_FAILED = "mfa_failed", "a wrong second-factor code was entered"
        TOTP_ENABLED = "totp_enabled", "turned on two-factor sign-in"
        TOTP_DISABLED = "totp_disabled", "turned off two-factor sign-in"
        TOTP_RESET = "totp_reset", "two-factor sign-in was reset by staff"
        RECOVERY_USED = "recovery_used", "used a recovery code"
        RECOVERY_REGENERATED = "recovery_regenerated", "made new recovery codes"
        PASSKEY_ADDED = "passkey_added", "added a passkey"
        PASSKEY_REMOVED = "passkey_removed", "removed a passkey"
        SIGNED_OUT_EVERYWHERE = "signed_out_everywhere", "signed out everywhere"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="security_events")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True, default="")
    # A keyed hash of the user agent: a sign-in from one not seen before is a new device.
    device = models.CharField(max_length=64, blank=True, default="")
    # How: "web", "api", "totp", "recovery", "admin".
    via = models.CharField(max_length=16, blank=True, default="")

    class Meta:
        ordering = ["-id"]
        indexes = [
            # The profile's list, newest first; and "has this device been seen" per user.
            models.Index(fields=["user", "-id"], name="security_log_user"),
            models.Index(fields=["user", "device"], name="security_log_device"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.get_kind_display()}"


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
        USER_MFA_RESET = "user.mfa_reset", "reset an account's two-factor sign-in"
        REPORT_RESOLVE = "report.resolve", "resolved a report"
        REPORT_DISMISS = "report.dismiss", "dismissed a report"
        FILE_DELETE = "file.delete", "deleted a file"

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
