"""How long the event record keeps events, and the pruning that enforces it."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from rooms.events.models import Event, EventLogState, PrunedEventMark

PRUNE_BATCH = 10_000
MARK_BATCH = 1000


def events_prune(*, older_than: timedelta) -> tuple[int, int | None]:
    """Delete events created more than `older_than` ago; return (events deleted, pruned-through id or None).

    The pruned-through mark is raised first, in its own commit with the marks
    of the rooms and users whose events go: from then on a cursor below it is
    told to resync if its user may have seen one of them, and the mark keeps
    the log's newest id even when every event is gone.
    """
    cutoff = timezone.now() - older_than
    through = Event.objects.filter(created_at__lt=cutoff).aggregate(last=Max("id"))["last"]
    if through is None:
        return 0, None
    with transaction.atomic():
        state, _ = EventLogState.objects.select_for_update().get_or_create(pk=1)
        if through > state.pruned_through:
            # With the mark, in its commit: a resume below it consults them at once.
            _marks_raise(through)
            state.pruned_through = through
            state.save(update_fields=["pruned_through"])
    deleted = 0
    while True:
        ids = list(Event.objects.filter(id__lte=through).order_by("id").values_list("id", flat=True)[:PRUNE_BATCH])
        if not ids:
            break
        deleted += Event.objects.filter(id__in=ids).delete()[0]
    return deleted, through


def _marks_raise(through: int) -> None:
    """Record, for each room and each user, the newest of their events up to `through` (see PrunedEventMark)."""
    events = Event.objects.filter(id__lte=through).order_by()
    rooms = events.filter(private=False).values_list("room_id").annotate(last=Max("id"))
    users = events.filter(user_id__isnull=False).values_list("user_id").annotate(last=Max("id"))
    # Earlier prunes removed the events below; a room or user without events here keeps its mark.
    PrunedEventMark.objects.bulk_create(
        [PrunedEventMark(room_id=room_id, through=last) for room_id, last in rooms],
        update_conflicts=True,
        unique_fields=["room"],
        update_fields=["through"],
        batch_size=MARK_BATCH,
    )
    PrunedEventMark.objects.bulk_create(
        [PrunedEventMark(user_id=user_id, through=last) for user_id, last in users],
        update_conflicts=True,
        unique_fields=["user"],
        update_fields=["through"],
        batch_size=MARK_BATCH,
    )
