from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    verbose_name = "Messaging"

    def ready(self) -> None:
        from chatproject import checks  # noqa: F401 (registers the system checks)
        from messaging import delivery

        # Committed events wake the socket delivery pumps (this process's and the others').
        delivery.install()
