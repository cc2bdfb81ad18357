"""Files in the Django admin: who uploaded what, where, how big; a moderator removes one through the service.

Removing asks for a reason, takes the bytes out of storage, updates the
message for its members and writes the moderation log (files.services.file_delete).
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.admin import ReasonActionForm, act_on_each
from accounts.models import User
from files.models import StoredFile
from files.services import file_delete, mib


@admin.register(StoredFile)
class StoredFileAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "uploader", "room", "human_size", "content_type", "message", "created_at")
    list_filter = (("room", admin.RelatedOnlyFieldListFilter), "content_type", "created_at")
    search_fields = ("name", "uploader__username", "room__name", "=room__id", "=uploader__id", "=message__id")
    list_select_related = ("uploader", "room")
    date_hierarchy = "created_at"
    fields = (
        "name",
        "uploader",
        "room",
        "message",
        "position",
        "content_type",
        "size",
        "width",
        "height",
        "key",
        "thumbnail_key",
        "created_at",
        "attached_at",
    )
    readonly_fields = fields
    actions = ["remove_files"]
    action_form = ReasonActionForm

    @admin.display(description="size", ordering="size")
    def human_size(self, stored: StoredFile) -> str:
        return mib(stored.size)

    @admin.action(description="Remove the selected files from storage (their messages are updated)")
    def remove_files(self, request: HttpRequest, queryset: QuerySet[StoredFile]) -> None:
        moderator: User = request.user  # type: ignore[assignment]
        act_on_each(
            self,
            request,
            list(queryset),
            lambda stored, reason: file_delete(actor=moderator, stored=stored, reason=reason, via="admin"),
            "Removed {count} file(s).",
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: StoredFile | None = None) -> bool:
        return False

    # Django's delete would skip storage, the message and the log: remove with the action above.
    def has_delete_permission(self, request: HttpRequest, obj: StoredFile | None = None) -> bool:
        return False
