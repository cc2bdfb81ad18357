from __future__ import annotations

from django.conf import settings
from django.db import models

from rooms.models import Room


class StoredFile(models.Model):
    """A file uploaded into a room: its bytes live in storage under `key`, this row says who may read them.

    It is an orphan (`message` NULL) until its uploader attaches it to a
    message in the same room; orphans older than a day are removed. The
    message is named by string: messaging sits above files.
    """

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="files")
    uploader = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="files")
    message = models.ForeignKey(
        "messaging.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="attachments"
    )
    # Order within the message, as the sender listed them.
    position = models.PositiveSmallIntegerField(default=0)
    # The name as the uploader's device called it, for display only (NUL and control characters removed).
    name = models.CharField(max_length=1024)
    # Where the bytes are in storage: generated, never the uploaded name as given.
    key = models.CharField(max_length=512, unique=True)
    content_type = models.CharField(max_length=100)
    size = models.BigIntegerField()
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    # Set by the thumbnail job; blank for non-images and until the job has run.
    thumbnail_key = models.CharField(max_length=512, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    attached_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # A message's attachments in order (prefetched with history pages).
            models.Index(fields=["message", "position"], name="file_message_position"),
            # The quota: one user's bytes.
            models.Index(fields=["uploader", "size"], name="file_uploader_size"),
            # The orphan sweep: never-attached files by age.
            models.Index(fields=["created_at"], name="file_orphan_age", condition=models.Q(message__isnull=True)),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.size} bytes) in {self.room_id}"

    @property
    def is_image(self) -> bool:
        return self.width is not None
