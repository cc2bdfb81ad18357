from django.apps import AppConfig


class RoomsConfig(AppConfig):
    name = "rooms"
    verbose_name = "Rooms"

    def ready(self) -> None:
        from accounts.services import (
            profile_change_listener_register,
            user_deactivation_hook_register,
            user_registration_hook_register,
        )
        from core import metrics, publish
        from rooms import membership_cache
        from rooms.events import Event
        from rooms.services import account_welcome, ownership_hand_over_for, user_update_announce

        # A new display name reaches those who share a room with the user (accounts cannot import rooms).
        profile_change_listener_register(user_update_announce)

        # New accounts join the default channels; the first one opens #general (accounts cannot import rooms).
        user_registration_hook_register(account_welcome)

        # Ended memberships and deleted rooms leave the posting check's cache.
        membership_cache.install()

        # A deactivated owner's channels pass to an heir (accounts cannot import rooms).
        user_deactivation_hook_register(lambda user, actor: ownership_hand_over_for(user=user, actor=actor))

        # Committed events (messages posted among them) are counted for /metrics.
        metrics.events_expected(Event.Type.values)
        publish.subscribe(lambda event: metrics.event_committed(event.type))
