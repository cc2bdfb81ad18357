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
