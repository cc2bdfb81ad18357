from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Realtime"

    def ready(self) -> None:
        from realtime import delivery

        # Committed events wake the socket delivery pumps (this process's and the others').
        delivery.install()
