"""The event record in the admin: read only, for looking into what clients were told."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from rooms.events.models import Event


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("id", "type", "room", "user", "actor", "message_id", "private", "created_at")
    list_filter = ("type", "private", "created_at")
    search_fields = ("=id", "=message_id", "room__name")
    list_select_related = ("room", "user", "actor")

    # The event record is written by services only; the admin reads it.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Event | None = None) -> bool:
        return False

    # Clients resume from this record: a deleted event would be a hole no one can see.
    def has_delete_permission(self, request: HttpRequest, obj: Event | None = None) -> bool:
        return False
