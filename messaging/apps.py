from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    verbose_name = "Messaging"

    def ready(self) -> None:
        from messaging.selectors import RoomMessageCounts
        from rooms.selectors import message_counts_register

        # Room summaries count unread messages and mentions through this (rooms cannot import messaging).
        message_counts_register(RoomMessageCounts())
