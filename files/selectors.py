"""Who may read a file, checked at every request."""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Q

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
    # One query: the file, its message's state and the caller's membership together (the thumbnails
    # of a room page are asked for by everyone at once, so each request's cost counts).
    stored = (
        StoredFile.objects.filter(pk=file_id, room__deleted_at__isnull=True)
        .filter(
            Q(message__isnull=True, uploader_id=user.pk) | Q(message__isnull=False, message__deleted_at__isnull=True)
        )
        .filter(Exists(Membership.objects.filter(room_id=OuterRef("room_id"), user_id=user.pk)))
        .only("id", "name", "key", "content_type", "size", "thumbnail_key", "width", "room_id", "uploader_id")
        .first()
    )
    if stored is None:
        raise NotFound("File not found.")
    return stored
