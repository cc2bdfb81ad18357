"""Every change to files: upload, attach, moderator deletion, and the sweeps that empty storage.

The bytes go to storage first (outside any transaction: it can take a
while), then the row commits with its thumbnail job. Removing bytes is a
job too, queued in the transaction that forgets the row, so a crash never
leaves a row without bytes, and bytes left without a row are retried away.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import IO, Any

from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from rest_framework import status

from accounts.models import ModerationAction, User
from accounts.services import moderation_record
from core.errors import Forbidden, Invalid, ServiceError
from files import images, metrics
from files.models import StoredFile
from files.storage import display_name, files_storage, new_key
from rooms.selectors import membership_require

logger = logging.getLogger(__name__)

ATTACHMENTS_MAX = 10


class TooLarge(ServiceError):
    """The file is over UPLOAD_MAX_BYTES, or over what is left of the uploader's quota."""

    code = "too_large"
    http_status = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE


def mib(size: int) -> str:
    """A size for people: "25 MiB", "1.5 GiB", "900 KiB"."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"


def too_large_error() -> TooLarge:
    return TooLarge(f"The file is too large: at most {mib(settings.UPLOAD_MAX_BYTES)}.")


# --- Hooks ------------------------------------------------------------------------------------

# Called as hook(message_id, actor_id) in the transaction that changed a message's attachments
# (a thumbnail ready, a file removed): messaging records message.updated (files cannot import messaging).
AttachmentsChanged = Callable[[int, int | None], None]
_attachment_hooks: list[AttachmentsChanged] = []


def attachments_changed_hook_register(hook: AttachmentsChanged) -> None:
    if hook not in _attachment_hooks:
        _attachment_hooks.append(hook)


def _attachments_changed(message_id: int, actor_id: int | None) -> None:
    for hook in _attachment_hooks:
        hook(message_id, actor_id)


# --- Upload -----------------------------------------------------------------------------------


def quota_used(user: User) -> int:
    return StoredFile.objects.filter(uploader=user).aggregate(total=Sum("size"))["total"] or 0


def _quota_require(user: User, size: int) -> None:
    used = quota_used(user)
    if used + size > settings.UPLOAD_QUOTA_BYTES:
        left = max(0, settings.UPLOAD_QUOTA_BYTES - used)
        raise TooLarge(
            f"Your storage quota is full: {mib(used)} of {mib(settings.UPLOAD_QUOTA_BYTES)} used, "
            f"{mib(left)} left. Delete messages with files you no longer need."
        )


def upload_store(*, room_id: int, uploader: User, upload: IO[bytes], name: object, size: int) -> StoredFile:
    """Store an uploaded file for the uploader in a room; return its row, not yet attached to a message."""
    membership_require(user=uploader, room=room_id)
    if size <= 0:
        raise Invalid({"file": "The file is empty."})
    if size > settings.UPLOAD_MAX_BYTES:
        raise too_large_error()
    _quota_require(uploader, size)
    try:
        sniffed = images.sniff(upload)
    except images.ImageTooLarge as exc:
        raise Invalid({"file": f"The image is too large to process ({exc} pixels)."}) from None
    source = sniffed.clean if sniffed.clean is not None else upload
    source.seek(0, 2)
    stored_size = source.tell()
    source.seek(0)
    clean_name = display_name(name)
    key = files_storage().save(new_key(clean_name), File(source))
    try:
        stored = _upload_record(
            room_id=room_id,
            uploader=uploader,
            name=clean_name,
            key=key,
            size=stored_size,
            sniffed=sniffed,
        )
    except BaseException:
        # Nothing points to these bytes: take them back at once.
        files_storage().delete(key)
        raise
    metrics.upload_stored(size=stored_size, image=stored.is_image)
    return stored


@transaction.atomic
def _upload_record(
    *, room_id: int, uploader: User, name: str, key: str, size: int, sniffed: images.Sniffed
) -> StoredFile:
    from files.tasks import thumbnail_make

    # One upload of a user at a time past this point, so two cannot both fit the last of a quota.
    User.objects.select_for_update().filter(pk=uploader.pk).values_list("pk", flat=True).get()
    _quota_require(uploader, size)
    stored = StoredFile.objects.create(
        room_id=room_id,
        uploader=uploader,
        name=name,
        key=key,
        content_type=sniffed.content_type,
        size=size,
        width=sniffed.width,
        height=sniffed.height,
    )
    if stored.is_image:
        thumbnail_make.enqueue(stored.pk)
    return stored


# --- Attach -----------------------------------------------------------------------------------


def clean_attachment_ids(value: object) -> list[int]:
    """Return the list of file ids to attach, or raise Invalid: ids, no repeats, at most ATTACHMENTS_MAX."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise Invalid({"attachments": "Must be a list of file ids."})
    if len(value) > ATTACHMENTS_MAX:
        raise Invalid({"attachments": f"At most {ATTACHMENTS_MAX} files in one message."})
    ids: list[int] = []
    for item in value:
        if not isinstance(item, int) or isinstance(item, bool) or not 0 < item < 2**63:
            raise Invalid({"attachments": "Must be a list of file ids."})
        if item in ids:
            raise Invalid({"attachments": f"File {item} is listed twice."})
        ids.append(item)
    return ids


def attachments_claim(*, file_ids: list[int], uploader: User, room_id: int, message_id: int) -> list[StoredFile]:
    """Attach the uploader's files to a new message, in the given order; call inside the post's transaction.

    A file is attached once, by its uploader, in the room it was uploaded to;
    any other id is refused as a whole (nothing is attached).
    """
    if not file_ids:
        return []
    rows = {
        stored.pk: stored for stored in StoredFile.objects.select_for_update().filter(pk__in=file_ids).order_by("pk")
    }
    for file_id in file_ids:
        stored = rows.get(file_id)
        # Someone else's upload is as unknown as a missing one: ids are not a way to probe.
        if stored is None or stored.uploader_id != uploader.pk:
            raise Invalid({"attachments": f"No upload {file_id} of yours."})
        if stored.room_id != room_id:
            raise Invalid({"attachments": f"File {file_id} was uploaded to another room."})
        if stored.message_id is not None:
            raise Invalid({"attachments": f"File {file_id} is already attached to a message."})
    now = timezone.now()
    ordered = []
    for position, file_id in enumerate(file_ids):
        stored = rows[file_id]
        stored.message_id, stored.position, stored.attached_at = message_id, position, now
        ordered.append(stored)
    StoredFile.objects.bulk_update(ordered, ["message", "position", "attached_at"])
    return ordered


# --- Thumbnails -------------------------------------------------------------------------------


def thumbnail_store(file_id: int) -> bool:
    """Make and store the thumbnail of an image; announce it on its message. Return whether one was made.

    Idempotent: a second run finds the thumbnail there and does nothing.
    """
    stored = StoredFile.objects.filter(pk=file_id).first()
    if stored is None or stored.thumbnail_key or not stored.is_image:
        return False
    storage = files_storage()
    try:
        with storage.open(stored.key, "rb") as source:
            data, extension = images.thumbnail(source)
    except (OSError, ValueError, SyntaxError, EOFError, images.ImageTooLarge):
        logger.warning("file %s: no thumbnail, the image did not decode", file_id, exc_info=True)
        return False
    thumbnail_key = storage.save(f"thumbnails/{stored.key.removeprefix('files/')}.{extension}", File(_bytes_io(data)))
    with transaction.atomic():
        locked = StoredFile.objects.select_for_update().filter(pk=file_id).first()
        if locked is None or locked.thumbnail_key:
            # Deleted, or a concurrent run won: our copy is not needed.
            transaction.on_commit(lambda: storage.delete(thumbnail_key))
            return False
        locked.thumbnail_key = thumbnail_key
        locked.save(update_fields=["thumbnail_key"])
        if locked.message_id is not None:
            _attachments_changed(locked.message_id, None)
    metrics.thumbnail_made((timezone.now() - stored.created_at).total_seconds())
    return True


def _bytes_io(data: bytes) -> IO[bytes]:
    import io

    return io.BytesIO(data)


# --- Removal ----------------------------------------------------------------------------------


def _forget(files: list[StoredFile]) -> None:
    """Delete the rows and queue their bytes' removal, in the caller's transaction."""
    from files.tasks import storage_delete

    keys = [key for stored in files for key in (stored.key, stored.thumbnail_key) if key]
    StoredFile.objects.filter(pk__in=[stored.pk for stored in files]).delete()
    if keys:
        storage_delete.enqueue(keys)


@transaction.atomic
def file_delete(*, actor: User, stored: StoredFile, reason: str = "", via: str = "admin") -> None:
    """A moderator removes a file: its bytes leave storage, its message shows it no more, the log says why.

    Staff anywhere; a room's owners and admins in their room.
    """
    stored = StoredFile.objects.select_for_update().select_related("uploader").get(pk=stored.pk)
    if not actor.is_staff:
        membership = membership_require(user=actor, room=stored.room_id)
        if not membership.can_moderate:
            raise Forbidden("Only the room's owners and admins, or staff, may delete files.")
    message_id = stored.message_id
    _forget([stored])
    moderation_record(
        actor=actor,
        action=ModerationAction.Kind.FILE_DELETE,
        target_user=stored.uploader,
        room_id=stored.room_id,
        message_id=message_id,
        reason=reason,
        via=via,
        detail=stored.name[:200],
    )
    if message_id is not None:
        _attachments_changed(message_id, actor.pk)


def orphans_remove(*, older_than: timedelta = timedelta(hours=24), batch: int = 500) -> int:
    """Remove uploads never attached within `older_than`; return how many. Idempotent, in batches."""
    cutoff = timezone.now() - older_than
    return _remove_batches(
        lambda: StoredFile.objects.filter(message__isnull=True, created_at__lt=cutoff).order_by("pk")[:batch]
    )


def retention_remove(*, batch: int = 500) -> int:
    """Remove the files of messages deleted more than FILE_RETENTION_DAYS ago; return how many."""
    cutoff = timezone.now() - timedelta(days=settings.FILE_RETENTION_DAYS)
    return _remove_batches(lambda: StoredFile.objects.filter(message__deleted_at__lt=cutoff).order_by("pk")[:batch])


def _remove_batches(select: Callable[[], Any], *, deadline_seconds: float = 60.0) -> int:
    removed = 0
    started = time.monotonic()
    # Bounded: a batch at a time, for at most a minute; the next run takes the rest.
    while time.monotonic() - started < deadline_seconds:
        with transaction.atomic():
            files = list(select().select_for_update(skip_locked=True))
            if not files:
                break
            _forget(files)
        removed += len(files)
    return removed
