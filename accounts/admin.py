from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.models import ModerationAction, User
from accounts.services import MODERATION_REASON_MAX, user_deactivate, user_set_password, user_sign_out_everywhere


class ReasonActionForm(ActionForm):
    """The admin's action bar with a reason field: every moderation action says why."""

    reason = forms.CharField(
        required=False,
        max_length=MODERATION_REASON_MAX,
        label="Reason",
        widget=forms.TextInput(attrs={"size": 40, "placeholder": "Why (kept in the moderation log)"}),
    )


def action_reason(modeladmin: admin.ModelAdmin, request: HttpRequest) -> str | None:
    """Return the reason given with an admin action, or None (and tell the moderator) when there is none."""
    reason = request.POST.get("reason", "").strip()
    if not reason:
        modeladmin.message_user(request, "Give a reason: it goes into the moderation log.", messages.ERROR)
        return None
    return reason[:MODERATION_REASON_MAX]


class PasswordResetForm(AdminPasswordChangeForm):
    """The admin's password form, through the account service: every sign-in of the account ends."""

    def save(self, commit: bool = True) -> User:
        user: User = self.user  # type: ignore[assignment]
        if self.cleaned_data["set_usable_password"]:
            return user_set_password(user=user, password=self.cleaned_data["password1"])
        user.set_unusable_password()
        user.save(update_fields=["password"])
        return user_sign_out_everywhere(user=user)


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "display_name", "email", "is_active", "is_staff", "date_joined", "last_login")
    list_filter = ("is_active", "is_staff", "is_superuser", "date_joined")
    search_fields = ("username", "display_name", "email")
    ordering = ("username",)
    fieldsets = (
        *BaseUserAdmin.fieldsets,  # type: ignore[misc]
        ("Chat", {"fields": ("display_name",)}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "email", "display_name", "password1", "password2")}),
    )
    actions = ["deactivate_accounts"]
    action_form = ReasonActionForm
    change_password_form = PasswordResetForm

    @admin.action(description="Deactivate the selected accounts (log them out everywhere)")
    def deactivate_accounts(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        reason = action_reason(self, request)
        if reason is None:
            return
        count = 0
        for user in queryset.filter(is_active=True):
            user_deactivate(user=user, actor=request.user, reason=reason, via="admin")  # type: ignore[arg-type]
            count += 1
        self.message_user(request, f"Deactivated {count} account(s); their sockets were closed.", messages.SUCCESS)

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        was_active = change and User.objects.filter(pk=obj.pk, is_active=True).exists()
        super().save_model(request, obj, form, change)
        if was_active and not obj.is_active:
            # Unticking "active" must take effect at once: revoke tokens and close sockets.
            user_deactivate(
                user=obj,
                actor=request.user,  # type: ignore[arg-type]
                reason="Unticked 'active' on the account's admin page.",
                via="admin",
            )


@admin.register(ModerationAction)
class ModerationActionAdmin(admin.ModelAdmin):
    """The moderation log: read-only, written by the services themselves."""

    list_display = (
        "created_at",
        "actor_username",
        "action",
        "target_username",
        "room_id",
        "message_id",
        "via",
        "reason",
    )
    list_filter = ("action", "via", ("actor", admin.RelatedOnlyFieldListFilter), "created_at")
    search_fields = ("actor_username", "target_username", "reason", "=room_id", "=message_id", "=report_id")
    date_hierarchy = "created_at"
    list_select_related = ("actor", "target_user")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ModerationAction | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ModerationAction | None = None) -> bool:
        # An audit log that moderators can prune proves nothing.
        return False
