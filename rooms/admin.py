from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from rooms.models import Ban, Event, Membership, Room


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ("user",)
    readonly_fields = ("joined_at", "joined_event_id", "last_read_message_id")
    # Membership changes made here skip the services (and so the event record);
    # moderators remove people with the actions on the room API or the ban list.
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Room | None = None) -> bool:
        return False


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ("__str__", "kind", "visibility", "name", "member_total", "created_at", "deleted_at")
    list_filter = ("kind", "visibility", ("deleted_at", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("name", "slug", "topic")
    readonly_fields = ("kind", "direct_key", "created_by", "created_at", "deleted_at")
    inlines = [MembershipInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Room]:
        return super().get_queryset(request).annotate(member_total=Count("memberships"))

    @admin.display(ordering="member_total", description="members")
    def member_total(self, room: Room) -> int:
        return room.member_total  # type: ignore[attr-defined]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "room", "role", "joined_at", "last_read_message_id")
    list_filter = ("role", "room__kind")
    search_fields = ("user__username", "room__name", "room__slug")
    list_select_related = ("user", "room")
    raw_id_fields = ("user", "room")
    readonly_fields = ("joined_at", "joined_event_id", "last_read_message_id")


@admin.register(Ban)
class BanAdmin(admin.ModelAdmin):
    list_display = ("user", "room", "banned_by", "reason", "created_at")
    list_filter = ("created_at",)
    search_fields = ("user__username", "room__name", "reason")
    list_select_related = ("user", "room", "banned_by")
    raw_id_fields = ("user", "room", "banned_by")


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
