from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    verbose_name = "Messaging"

    def ready(self) -> None:
        from accounts.services import user_erasure_hook_register
        from files.services import attachments_changed_hook_register
        from messaging.selectors import RoomMessageCounts
        from messaging.services import attachments_announce, user_erased
        from rooms.selectors import message_counts_register

        # Room summaries count unread messages and mentions through this (rooms cannot import messaging).
        message_counts_register(RoomMessageCounts())
        # An erased account's name leaves the event record (accounts cannot import messaging).
        user_erasure_hook_register(user_erased)
        # A thumbnail made or a file removed shows on its message (files cannot import messaging).
        attachments_changed_hook_register(attachments_announce)
