from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Background jobs"

    def ready(self) -> None:
        from jobs import metrics

        # The queue's depth and age are read from the table at scrape time.
        metrics.install()
