"""How long the event record keeps events, and the pruning that enforces it."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from rooms.events.models import Event, EventLogState

PRUNE_BATCH = 10_000


def events_prune(*, older_than: timedelta) -> tuple[int, int | None]:
    """Delete events created more than `older_than` ago; return (events deleted, pruned-through id or None).

    The pruned-through mark is raised first, in its own commit: from then on a
    cursor below it is told to resync, and the mark keeps the log's newest id
    even when every event is gone.
    """
    cutoff = timezone.now() - older_than
    through = Event.objects.filter(created_at__lt=cutoff).aggregate(last=Max("id"))["last"]
    if through is None:
        return 0, None
    with transaction.atomic():
        state, _ = EventLogState.objects.select_for_update().get_or_create(pk=1)
        if through > state.pruned_through:
            state.pruned_through = through
            state.save(update_fields=["pruned_through"])
    deleted = 0
    while True:
        ids = list(Event.objects.filter(id__lte=through).order_by("id").values_list("id", flat=True)[:PRUNE_BATCH])
        if not ids:
            break
        deleted += Event.objects.filter(id__in=ids).delete()[0]
    return deleted, through
