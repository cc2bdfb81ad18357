"""Print a new VAPID key pair for Web Push, as environment variable lines."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from notifications.push import generate_vapid_keys


class Command(BaseCommand):
    help = "Print a new VAPID key pair (VAPID_PRIVATE_KEY, VAPID_PUBLIC_KEY) for Web Push."

    def handle(self, *args: Any, **options: Any) -> None:
        private, public = generate_vapid_keys()
        self.stdout.write(f"VAPID_PRIVATE_KEY={private}\nVAPID_PUBLIC_KEY={public}\n")
