"""Delete events older than EVENT_RETENTION; clients resuming from before them are told to resync."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from rooms.models import Event, EventLogState

BATCH = 10_000


class Command(BaseCommand):
    help = "Delete events older than the retention period (EVENT_RETENTION_DAYS, default 7)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days", type=float, default=None, help="Keep this many days of events instead of the setting."
        )

    def handle(self, *args: Any, days: float | None = None, **options: Any) -> None:
        retention = timedelta(days=days) if days is not None else settings.EVENT_RETENTION
        cutoff = timezone.now() - retention
        through = Event.objects.filter(created_at__lt=cutoff).aggregate(last=Max("id"))["last"]
        if through is None:
            self.stdout.write("No events older than the retention period.")
            return
        with transaction.atomic():
            # Raise the watermark first: from this commit on, cursors below it resync.
            state, _ = EventLogState.objects.select_for_update().get_or_create(pk=1)
            if through > state.pruned_through:
                state.pruned_through = through
                state.save(update_fields=["pruned_through"])
        deleted = 0
        while True:
            ids = list(Event.objects.filter(id__lte=through).order_by("id").values_list("id", flat=True)[:BATCH])
            if not ids:
                break
            deleted += Event.objects.filter(id__in=ids).delete()[0]
        self.stdout.write(f"Deleted {deleted} events up to id {through}.")
