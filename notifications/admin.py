from django.contrib import admin
from django.http import HttpRequest

from notifications.models import Preferences


@admin.register(Preferences)
class PreferencesAdmin(admin.ModelAdmin):
    """Read-only: preferences are each person's own, changed through the API."""

    list_display = ("user", "push", "email", "email_delay_seconds", "dnd_until", "timezone")
    search_fields = ("user__username",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
