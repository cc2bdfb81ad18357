from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from messaging.models import Message, MessageEdit, Reaction, Report
from messaging.services import message_delete


class MessageEditInline(admin.TabularInline):
    model = MessageEdit
    extra = 0
    readonly_fields = ("body", "edited_at")
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Message | None = None) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "room", "author", "short_body", "created_at", "edited_at", "deleted_at")
    list_filter = ("created_at", ("deleted_at", admin.EmptyFieldListFilter), "room__kind")
    search_fields = ("body", "author__username", "room__name")
    list_select_related = ("room", "author")
    raw_id_fields = ("room", "author", "parent", "mentions")
    readonly_fields = ("room", "author", "body", "html", "client_id", "parent", "created_at", "edited_at", "deleted_at")
    date_hierarchy = "created_at"
    inlines = [MessageEditInline]
    actions = ["delete_messages"]

    @admin.display(description="body")
    def short_body(self, message: Message) -> str:
        return message.body[:80]

    @admin.action(description="Delete the selected messages (tombstone, members are told)")
    def delete_messages(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        count = 0
        for message in queryset.filter(deleted_at__isnull=True):
            message_delete(actor=request.user, message=message)  # type: ignore[arg-type]
            count += 1
        self.message_user(request, f"Deleted {count} message(s).", messages.SUCCESS)

    def get_actions(self, request: HttpRequest, *args: Any, **kwargs: Any) -> dict[str, Any]:
        actions = super().get_actions(request, *args, **kwargs)
        # Hard deletion would skip the event record; use the tombstone action.
        actions.pop("delete_selected", None)
        return actions

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Reaction)
class ReactionAdmin(admin.ModelAdmin):
    list_display = ("emoji", "user", "message", "created_at")
    search_fields = ("emoji", "user__username")
    raw_id_fields = ("message", "user")


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ("id", "status", "message", "reporter", "reason", "created_at", "handled_by")
    list_filter = ("status", "created_at")
    search_fields = ("reason", "message__body", "reporter__username")
    list_select_related = ("message", "reporter", "handled_by")
    raw_id_fields = ("message", "reporter", "handled_by")
    readonly_fields = ("message", "reporter", "reason", "created_at")
