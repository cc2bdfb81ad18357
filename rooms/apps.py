from django.apps import AppConfig


class RoomsConfig(AppConfig):
    name = "rooms"
    verbose_name = "Rooms"

    def ready(self) -> None:
        from chatproject import metrics
        from rooms import membership_cache

        # Ended memberships and deleted rooms leave the posting check's cache.
        membership_cache.install()

        # Committed events (messages posted among them) are counted for /metrics.
        metrics.install()
