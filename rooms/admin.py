"""Rooms, memberships and bans in the Django admin, every change through rooms.services as a site moderator.

Staff are not members of the rooms they look after: the services' site
moderator path (`site_moderator=True, via="admin"`) lets them act on any
channel, and logs each action with its reason. Members are told on their
open sockets as if a room admin had acted. Direct conversations are
private: nothing in them is changed from here.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from accounts.admin import ReasonActionForm, ReasonModelForm, ThroughServicesMixin, act_on_each, action_reason
from accounts.models import User
from rooms.events import admin as events_admin  # noqa: F401 (registers the event record's read-only view)
from rooms.models import Ban, Membership, Room
from rooms.services import member_add, member_kick, member_set_role, member_unban, room_delete, room_update


class MembershipInline(admin.TabularInline):
    """Who is in the room, read only: members are added, changed and removed on the Memberships page."""

    model = Membership
    extra = 0
    fields = ("user", "role", "joined_at", "last_read_message_id")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Room | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Room | None = None) -> bool:
        return False


class RoomForm(ReasonModelForm):
    class Meta:
        model = Room
        fields = ("name", "topic", "visibility", "is_default")


@admin.register(Room)
class RoomAdmin(ThroughServicesMixin, admin.ModelAdmin):
    list_display = ("__str__", "kind", "visibility", "is_default", "name", "member_total", "created_at", "deleted_at")
    list_filter = ("kind", "visibility", "is_default", ("deleted_at", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("name", "slug", "topic")
    form = RoomForm
    fields = (
        "name",
        "slug",
        "topic",
        "visibility",
        "is_default",
        "kind",
        "direct_key",
        "created_by",
        "created_at",
        "deleted_at",
    )
    readonly_fields = ("slug", "kind", "direct_key", "created_by", "created_at", "deleted_at")
    inlines = [MembershipInline]
    actions = ["delete_rooms"]
    action_form = ReasonActionForm

    def get_queryset(self, request: HttpRequest) -> QuerySet[Room]:
        return super().get_queryset(request).annotate(member_total=Count("memberships"))

    @admin.display(ordering="member_total", description="members")
    def member_total(self, room: Room) -> int:
        return room.member_total  # type: ignore[attr-defined]

    def get_fields(self, request: HttpRequest, obj: Room | None = None) -> Any:
        if obj is not None and self.has_change_permission(request, obj):
            return (*self.fields, "reason")
        return self.fields

    # Channels are made by people in the app, who then own them.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    # A conversation between people, or a deleted room, is only looked at from here.
    def has_change_permission(self, request: HttpRequest, obj: Room | None = None) -> bool:
        if obj is not None and (obj.is_direct or obj.deleted_at is not None):
            return False
        return super().has_change_permission(request, obj)

    # A plain delete would take the room's history and event record with it, and
    # tell no one: rooms are deleted with the action, softly, through the service.
    def has_delete_permission(self, request: HttpRequest, obj: Room | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Room, form: Any, change: bool) -> None:
        data = form.cleaned_data
        changed = set(form.changed_data)
        room_update(
            actor=request.user,  # type: ignore[arg-type]
            room=obj,
            name=data["name"] if "name" in changed else None,
            topic=data["topic"] if "topic" in changed else None,
            visibility=data["visibility"] if "visibility" in changed else None,
            is_default=data["is_default"] if "is_default" in changed else None,
            site_moderator=True,
            reason=data.get("reason", ""),
            via="admin",
        )
        obj.refresh_from_db()

    @admin.action(description="Delete the selected channels (members are told; the history is kept)")
    def delete_rooms(self, request: HttpRequest, queryset: QuerySet[Room]) -> None:
        moderator: User = request.user  # type: ignore[assignment]
        act_on_each(
            self,
            request,
            list(queryset.filter(deleted_at__isnull=True)),
            lambda room, reason: room_delete(
                actor=moderator, room=room, site_moderator=True, reason=reason, via="admin"
            ),
            "Deleted {count} channel(s).",
        )


class MembershipForm(ReasonModelForm):
    class Meta:
        model = Membership
        fields = ("room", "user", "role")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Staff add people to live channels only, and only people who can log in.
        room_field, user_field = self.fields.get("room"), self.fields.get("user")
        if isinstance(room_field, forms.ModelChoiceField):
            room_field.queryset = Room.objects.filter(kind=Room.Kind.CHANNEL, deleted_at__isnull=True)
        if isinstance(user_field, forms.ModelChoiceField):
            user_field.queryset = User.objects.filter(is_active=True)


@admin.register(Membership)
class MembershipAdmin(ThroughServicesMixin, admin.ModelAdmin):
    list_display = ("user", "room", "role", "joined_at", "last_read_message_id")
    list_filter = ("role", "room__kind")
    search_fields = ("user__username", "room__name", "room__slug")
    list_select_related = ("user", "room")
    raw_id_fields = ("user", "room")
    form = MembershipForm
    actions = ["remove_members"]
    action_form = ReasonActionForm

    def get_fields(self, request: HttpRequest, obj: Membership | None = None) -> Any:
        if obj is None:
            # Someone added here joins as a member; their role is changed afterwards.
            return ("room", "user", "reason")
        fields = ("room", "user", "role", "joined_at", "last_read_message_id")
        return (*fields, "reason") if self.has_change_permission(request, obj) else fields

    def get_readonly_fields(self, request: HttpRequest, obj: Membership | None = None) -> Any:
        return () if obj is None else ("room", "user", "joined_at", "last_read_message_id")

    # Roles belong to channels; a direct conversation's members are only looked at from here.
    def has_change_permission(self, request: HttpRequest, obj: Membership | None = None) -> bool:
        if obj is not None and (obj.room.is_direct or obj.room.deleted_at is not None):
            return False
        return super().has_change_permission(request, obj)

    # Removing someone must drop them from the room's sockets and the event
    # record, and keep the channel owned: use the action, through the service.
    def has_delete_permission(self, request: HttpRequest, obj: Membership | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Membership, form: Any, change: bool) -> None:
        moderator: User = request.user  # type: ignore[assignment]
        data = form.cleaned_data
        reason = data.get("reason", "")
        if not change:
            membership, _ = member_add(
                actor=moderator,
                room=data["room"],
                user_id=data["user"].pk,
                site_moderator=True,
                reason=reason,
                via="admin",
            )
            self.adopt(obj, membership)
            return
        if "role" in form.changed_data:
            member_set_role(
                actor=moderator,
                room=obj.room,
                user_id=obj.user_id,
                role=data["role"],
                site_moderator=True,
                reason=reason,
                via="admin",
            )

    @admin.action(description="Remove the selected members from their channels (they are told; they may join again)")
    def remove_members(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        moderator: User = request.user  # type: ignore[assignment]
        act_on_each(
            self,
            request,
            list(queryset.select_related("room", "user")),
            lambda membership, reason: member_kick(
                actor=moderator,
                room=membership.room,
                user_id=membership.user_id,
                site_moderator=True,
                reason=reason,
                via="admin",
            ),
            "Removed {count} member(s).",
        )


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
