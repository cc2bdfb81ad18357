"""Who may post where, from the cache: the membership check of every posted message.

Posting is the hottest write, and its membership check was a query of its
own in every post. Only "is a member of this live room" is cached, so a new
membership needs no invalidation (a miss reads the database); a membership
that ends and a room that is deleted remove their entries after commit,
whichever code path did it (signals also see cascades and the admin).

A post that read the database just before a removal committed may put the
entry back just after: the entry lives CACHE_SECONDS at most, which bounds
that race. A cache that fails is read as a miss.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from accounts.models import User
from rooms.models import Membership, Room
from rooms.selectors import membership_require

logger = logging.getLogger(__name__)

CACHE_SECONDS = 30


def _key(room_id: int, user_id: int) -> str:
    return f"{settings.MEMBERSHIP_CACHE_PREFIX}{room_id}:{user_id}"


def require_member(*, user: User, room_id: int) -> None:
    """Raise as `membership_require` does unless the user is a member of the live room."""
    key = _key(room_id, user.pk)
    try:
        if cache.get(key):
            return
    except Exception:
        logger.warning("membership cache: read failed", exc_info=True)
    membership_require(user=user, room=room_id)
    try:
        cache.set(key, 1, CACHE_SECONDS)
    except Exception:
        logger.warning("membership cache: write failed", exc_info=True)


def forget(pairs: list[tuple[int, int]]) -> None:
    """Remove the entries of these (room id, user id) after the current transaction commits."""
    keys = [_key(room_id, user_id) for room_id, user_id in pairs]
    if not keys:
        return

    def delete() -> None:
        try:
            cache.delete_many(keys)
        except Exception:
            logger.warning("membership cache: invalidation failed; entries lapse within %s s", CACHE_SECONDS)

    transaction.on_commit(delete)


def _membership_ended(sender: Any, instance: Membership, **kwargs: Any) -> None:
    forget([(instance.room_id, instance.user_id)])


def _room_saved(sender: Any, instance: Room, **kwargs: Any) -> None:
    if instance.deleted_at is not None:
        member_ids = Membership.objects.filter(room_id=instance.pk).values_list("user_id", flat=True)
        forget([(instance.pk, user_id) for user_id in member_ids])


def install() -> None:
    post_delete.connect(_membership_ended, sender=Membership, dispatch_uid="membership_cache.ended")
    post_save.connect(_room_saved, sender=Room, dispatch_uid="membership_cache.room_saved")
