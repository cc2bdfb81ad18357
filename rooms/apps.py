from django.apps import AppConfig


class RoomsConfig(AppConfig):
    name = "rooms"
    verbose_name = "Rooms"

    def ready(self) -> None:
        from chatproject import metrics

        # Committed events (messages posted among them) are counted for /metrics.
        metrics.install()
