from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from accounts.admin import ReasonActionForm, action_reason
from rooms.events import admin as events_admin  # noqa: F401 (registers the event record's read-only view)
from rooms.models import Ban, Membership, Room
from rooms.services import member_unban


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
    """Bans are made through the services (room API, or the message and report actions) and lifted here."""

    list_display = ("user", "room", "banned_by", "reason", "created_at")
    list_filter = ("created_at", ("room", admin.RelatedOnlyFieldListFilter))
    search_fields = ("user__username", "room__name", "reason")
    list_select_related = ("user", "room", "banned_by")
    raw_id_fields = ("user", "room", "banned_by")
    actions = ["lift_bans"]
    action_form = ReasonActionForm

    @admin.action(description="Lift the selected bans (they may join again)")
    def lift_bans(self, request: HttpRequest, queryset: QuerySet[Ban]) -> None:
        reason = action_reason(self, request)
        if reason is None:
            return
        for ban in queryset.select_related("room"):
            member_unban(
                actor=request.user,  # type: ignore[arg-type]
                room=ban.room,
                user_id=ban.user_id,
                reason=reason,
                site_moderator=True,
                via="admin",
            )
        self.message_user(request, "Lifted the selected bans.", messages.SUCCESS)

    # A ban made here would leave the user in the room: ban through the services.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Ban | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Ban | None = None) -> bool:
        return False
