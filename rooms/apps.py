from django.apps import AppConfig


class RoomsConfig(AppConfig):
    name = "rooms"
    verbose_name = "Rooms"

    def ready(self) -> None:
        from core import metrics, publish
        from rooms import membership_cache
        from rooms.events import Event

        # Ended memberships and deleted rooms leave the posting check's cache.
        membership_cache.install()

        # Committed events (messages posted among them) are counted for /metrics.
        metrics.events_expected(Event.Type.values)
        publish.subscribe(lambda event: metrics.event_committed(event.type))
