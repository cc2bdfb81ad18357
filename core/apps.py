from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from core import checks, metrics  # noqa: F401 (checks registers the system checks)

        # Messages the channel layer drops are counted for /metrics.
        metrics.install()
