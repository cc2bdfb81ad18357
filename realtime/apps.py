from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Realtime"

    def ready(self) -> None:
        from core import presence as shared_presence
        from realtime import delivery, presence

        # Committed events wake the socket delivery pumps (this process's and the others').
        delivery.install()
        # Apps ask who is online through core (the notifier's @here).
        shared_presence.provide(presence.online_among_blocking)
