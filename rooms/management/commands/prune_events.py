"""Delete events older than EVENT_RETENTION; clients resuming from before them are told to resync."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from rooms.events import events_prune


class Command(BaseCommand):
    help = "Delete events older than the retention period (EVENT_RETENTION_DAYS, default 7)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days", type=float, default=None, help="Keep this many days of events instead of the setting."
        )

    def handle(self, *args: Any, days: float | None = None, **options: Any) -> None:
        retention = timedelta(days=days) if days is not None else settings.EVENT_RETENTION
        deleted, through = events_prune(older_than=retention)
        if through is None:
            self.stdout.write("No events older than the retention period.")
            return
        self.stdout.write(f"Deleted {deleted} events up to id {through}.")
