"""Accounts in the Django admin, and the pieces every app's admin uses to act through the services.

Nothing in the admin writes a row itself: each add, change and action calls
the same service as the API, which records the event clients hear and the
moderation log entry, with the reason the moderator gave. What no service
does is not offered. Accounts are deactivated or erased, never deleted: a
deleted account would take its messages, and the history around them, with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm, AdminUserCreationForm, UserChangeForm
from django.db import transaction
from django.db.models import Exists, Model, OuterRef, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from rest_framework_simplejwt.token_blacklist.admin import BlacklistedTokenAdmin as LibraryBlacklistedTokenAdmin
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

from accounts import mfa
from accounts.forms import AdminLoginForm
from accounts.models import ModerationAction, Passkey, TotpDevice, User
from accounts.services import (
    MODERATION_REASON_MAX,
    user_access_set,
    user_deactivate,
    user_erase,
    user_reactivate,
    user_register,
    user_set_password,
    user_sign_out_everywhere,
    user_update_profile,
)
from core.errors import ServiceError

REASON_NEEDED = "Give a reason: it goes into the moderation log."


# --- Acting through the services -----------------------------------------------------------------------


class PasswordResetForm(AdminPasswordChangeForm):
    """The admin's password form, through the account service: every sign-in of the account ends."""

    def save(self, commit: bool = True) -> User:
        user: User = self.user  # type: ignore[assignment]
        if self.cleaned_data["set_usable_password"]:
            return user_set_password(user=user, password=self.cleaned_data["password1"])
        user.set_unusable_password()
        user.save(update_fields=["password"])
        return user_sign_out_everywhere(user=user)


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
        modeladmin.message_user(request, REASON_NEEDED, messages.ERROR)
        return None
    return reason[:MODERATION_REASON_MAX]


def act_on_each(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    items: list[Any],
    act: Callable[[Any, str], object],
    done: str,
) -> None:
    """Run `act(item, reason)` for each item, each in its own transaction; report successes and refusals."""
    reason = action_reason(modeladmin, request)
    if reason is None:
        return
    count = 0
    for item in items:
        try:
            with transaction.atomic():
                act(item, reason)
        except ServiceError as exc:
            modeladmin.message_user(request, f"{item}: {exc.detail}", messages.WARNING)
        else:
            count += 1
    modeladmin.message_user(request, done.format(count=count), messages.SUCCESS)


def reason_field() -> forms.CharField:
    return forms.CharField(
        required=False,
        max_length=MODERATION_REASON_MAX,
        label="Reason",
        help_text="Why: kept in the moderation log with the change. Needed for any change.",
        widget=forms.TextInput(attrs={"size": 60}),
    )


def require_reason(form: forms.BaseForm) -> None:
    """Refuse a form that changes something without saying why."""
    changed = [name for name in form.changed_data if name != "reason"]
    if changed and not (form.cleaned_data.get("reason") or "").strip():
        form.add_error("reason", REASON_NEEDED)


class ReasonModelForm(forms.ModelForm):
    """An admin form whose change goes through a service, with a reason for the moderation log."""

    reason = reason_field()

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        require_reason(self)
        return cleaned


def _form_refused(form_class: type[forms.BaseForm], refusal: ServiceError) -> type[forms.BaseForm]:
    """Return `form_class` made to fail with the service's refusal, field by field where it names fields."""

    class Refused(form_class):  # type: ignore[valid-type, misc]
        def clean(self) -> dict[str, Any]:
            cleaned: dict[str, Any] = super().clean()
            detail = refusal.detail if isinstance(refusal.detail, dict) else {None: refusal.detail}
            for field, message in detail.items():
                self.add_error(field if field in self.fields else None, message)
            return cleaned

    Refused.__name__ = form_class.__name__
    return Refused


class ThroughServicesMixin:
    """For a ModelAdmin whose save_model calls a service: a refusal shows on the form, and nothing is saved."""

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)  # type: ignore[misc]
        except ServiceError as refusal:
            # The admin's transaction has rolled back; show the same form again, saying why.
            request.service_refusal = refusal  # type: ignore[attr-defined]
            return super().changeform_view(request, object_id, form_url, extra_context)  # type: ignore[misc]

    def get_form(self, request: HttpRequest, obj: Model | None = None, change: bool = False, **kwargs: Any) -> Any:
        form_class = super().get_form(request, obj, change=change, **kwargs)  # type: ignore[misc]
        refusal = getattr(request, "service_refusal", None)
        return form_class if refusal is None else _form_refused(form_class, refusal)

    def adopt(self, obj: Model, saved: Model) -> None:
        """Make the admin's unsaved `obj` stand for the row a service created, for the admin's reply and log."""
        obj.pk = saved.pk
        obj._state.adding = False
        obj._state.db = saved._state.db


# --- Accounts ------------------------------------------------------------------------------------------


class UserCreationThroughService(AdminUserCreationForm):
    """The add form: the account is made by accounts.services.user_register, the API's own path."""

    # An account made here logs in with a password; it can be turned off later.
    usable_password = None  # type: ignore[assignment]
    reason = reason_field()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["password1"].required = True
        self.fields["password2"].required = True

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        require_reason(self)
        return cleaned


class UserChangeThroughServices(UserChangeForm):
    reason = reason_field()

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        require_reason(self)
        return cleaned


_HAS_TWO_FACTOR = Exists(TotpDevice.objects.filter(user=OuterRef("pk"), confirmed_at__isnull=False)) | Exists(
    Passkey.objects.filter(user=OuterRef("pk"))
)


class TwoFactorFilter(admin.SimpleListFilter):
    title = "two-factor sign-in"
    parameter_name = "two_factor"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("on", "On"), ("off", "Off")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in ("on", "off"):
            return queryset.filter(has_two_factor=self.value() == "on")
        return queryset


# A password alone must not open the admin for an account that has two-factor on.
admin.site.login_form = AdminLoginForm


@admin.register(User)
class UserAdmin(ThroughServicesMixin, BaseUserAdmin):
    list_display = (
        "username",
        "display_name",
        "email",
        "is_active",
        "is_staff",
        "date_joined",
        "last_login",
        "erased_at",
        "two_factor",
    )
    list_filter = (
        "is_active",
        "is_staff",
        "is_superuser",
        "date_joined",
        ("erased_at", admin.EmptyFieldListFilter),
        TwoFactorFilter,
    )
    search_fields = ("username", "display_name", "email")
    ordering = ("username",)
    form = UserChangeThroughServices
    add_form = UserCreationThroughService
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Profile", {"fields": ("display_name", "email")}),
        ("Access", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined", "erased_at")}),
        ("Why", {"fields": ("reason",)}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("username", "email", "display_name", "password1", "password2", "reason"),
            },
        ),
    )
    # The username and email have no service to change them; erasure clears them.
    readonly_fields = ("username", "email", "last_login", "date_joined", "erased_at")
    actions = ["deactivate_accounts", "reactivate_accounts", "erase_accounts", "reset_two_factor"]
    action_form = ReasonActionForm
    change_password_form = PasswordResetForm

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ()
        if obj.erased_at is not None:
            # Nothing is left to edit of an erased account.
            return tuple(name for _, options in self.fieldsets for name in options["fields"] if name != "reason")
        return self.readonly_fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        return super().get_queryset(request).annotate(has_two_factor=_HAS_TWO_FACTOR)

    @admin.display(boolean=True, description="2FA", ordering="has_two_factor")
    def two_factor(self, obj: User) -> bool:
        return bool(getattr(obj, "has_two_factor", False))

    @admin.action(description="Reset two-factor sign-in of the selected accounts (lost phone; signs them out)")
    def reset_two_factor(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        moderator: User = request.user  # type: ignore[assignment]
        act_on_each(
            self,
            request,
            list(queryset.filter(has_two_factor=True)),  # type: ignore[misc]  # annotated in get_queryset
            lambda user, reason: mfa.mfa_reset(user=user, actor=moderator, reason=reason, via="admin"),
            "Reset two-factor sign-in of {count} account(s); they sign in with their password and may set it up again.",
        )

    # Deleting an account would delete its messages too: deactivate or erase instead.
    def has_delete_permission(self, request: HttpRequest, obj: User | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        moderator: User = request.user  # type: ignore[assignment]
        data = form.cleaned_data
        reason = data.get("reason", "")
        if not change:
            created = user_register(
                username=data["username"],
                email=data.get("email", ""),
                password=data["password1"],
                display_name=data.get("display_name", ""),
                actor=moderator,
                reason=reason,
                via="admin",
            )
            self.adopt(obj, created)
            return
        user = User.objects.get(pk=obj.pk)
        changed = set(form.changed_data)
        if "display_name" in changed:
            user_update_profile(
                user=user, display_name=data["display_name"], actor=moderator, reason=reason, via="admin"
            )
        if changed & {"is_staff", "is_superuser", "groups", "user_permissions"}:
            user_access_set(
                actor=moderator,
                user=user,
                is_staff=data["is_staff"],
                is_superuser=data["is_superuser"],
                groups=data["groups"],
                permissions=data["user_permissions"],
                reason=reason,
            )
        if "is_active" in changed and not data["is_active"]:
            # Unticking "active" takes effect at once: tokens revoked, sockets closed, channels handed on.
            user_deactivate(user=user, actor=moderator, reason=reason, via="admin")
        elif "is_active" in changed:
            user_reactivate(user=user, actor=moderator, reason=reason, via="admin")

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # Groups and permissions were set by user_access_set in save_model; the form saves nothing itself.
        return

    @admin.action(description="Deactivate the selected accounts (log them out everywhere)")
    def deactivate_accounts(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        moderator: User = request.user  # type: ignore[assignment]
        act_on_each(
            self,
            request,
            list(queryset.filter(is_active=True)),
            lambda user, reason: user_deactivate(user=user, actor=moderator, reason=reason, via="admin"),
            "Deactivated {count} account(s); their sockets were closed and their channels handed on.",
        )

    @admin.action(description="Reactivate the selected accounts (they may log in again)")
    def reactivate_accounts(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        moderator: User = request.user  # type: ignore[assignment]
        act_on_each(
            self,
            request,
            list(queryset.filter(is_active=False)),
            lambda user, reason: user_reactivate(user=user, actor=moderator, reason=reason, via="admin"),
            "Reactivated {count} account(s).",
        )

    @admin.action(description="Erase the selected accounts' personal data (cannot be undone)")
    def erase_accounts(self, request: HttpRequest, queryset: QuerySet[User]) -> TemplateResponse | None:
        users = list(queryset.filter(erased_at__isnull=True))
        if request.POST.get("confirmed") != "yes":
            if action_reason(self, request) is None:
                return None
            # Erasure cannot be undone: show what goes, and ask once more.
            return TemplateResponse(
                request,
                "admin/accounts/user/erase_confirmation.html",
                {
                    **self.admin_site.each_context(request),
                    "title": "Erase personal data?",
                    "opts": self.model._meta,
                    "users": users,
                    "reason": request.POST.get("reason", "").strip(),
                    "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
                },
            )
        moderator: User = request.user  # type: ignore[assignment]
        act_on_each(
            self,
            request,
            users,
            lambda user, reason: user_erase(user=user, actor=moderator, reason=reason, via="admin"),
            "Erased the personal data of {count} account(s); their messages now show as from a deleted user.",
        )
        return None


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
        "detail",
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


# simplejwt's page lets staff add, edit and delete blacklist rows, and deleting
# one would bring a revoked token back to life: here the blacklist is only read.
admin.site.unregister(BlacklistedToken)


@admin.register(BlacklistedToken)
class BlacklistedTokenAdmin(LibraryBlacklistedTokenAdmin):
    actions = None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: BlacklistedToken | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: BlacklistedToken | None = None) -> bool:
        return False
