"""Notifications in the admin: read-only views for operators (everything here changes through the API or the worker)."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from notifications.models import EmailBatch, Notification, Preferences, PushSubscription


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Preferences)
class PreferencesAdmin(ReadOnlyAdmin):
    list_display = ("user", "push", "email", "email_delay_seconds", "dnd_until", "timezone")
    search_fields = ("user__username",)
    list_select_related = ("user",)


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "room", "message_id", "reason", "push_state", "email_state", "created_at")
    list_filter = ("reason", "push_state", "email_state")
    search_fields = ("user__username",)
    list_select_related = ("user", "room")


@admin.register(PushSubscription)
class PushSubscriptionAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "created_at", "last_success_at")
    search_fields = ("user__username",)
    list_select_related = ("user",)
    # The endpoint and keys identify one browser: not shown.
    exclude = ("endpoint", "p256dh", "auth")


@admin.register(EmailBatch)
class EmailBatchAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "created_at", "sent_at", "failure")
    search_fields = ("user__username",)
    list_select_related = ("user",)
