"""Who may read a file, checked at every request."""

from __future__ import annotations

from accounts.models import User
from core.errors import NotFound
from files.models import StoredFile
from rooms.models import Membership


def file_for_reader(*, user: User, file_id: int) -> StoredFile:
    """Return the file if the user may read it now, else NotFound (as for a room they cannot see).

    Attached: the members of its room, while its message stands. Not yet
    attached: only its uploader, while still a member. Leaving, a kick or a
    ban ends the membership and with it the access.
    """
    stored = (
        StoredFile.objects.select_related("message")
        .filter(pk=file_id, room__deleted_at__isnull=True)
        .only(
            "id",
            "name",
            "key",
            "content_type",
            "size",
            "thumbnail_key",
            "width",
            "room_id",
            "uploader_id",
            "message__deleted_at",
        )
        .first()
    )
    if stored is None:
        raise NotFound("File not found.")
    if stored.message_id is None:
        visible = stored.uploader_id == user.pk
    else:
        visible = stored.message is not None and stored.message.deleted_at is None
    if not visible or not Membership.objects.filter(room_id=stored.room_id, user=user).exists():
        raise NotFound("File not found.")
    return stored
