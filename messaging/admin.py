"""Moderation in the Django admin: the reports queue, message search, and actions that go through the services.

Every action asks for a reason (the action bar's Reason field) and is
written to the moderation log by the service it calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Min, OuterRef, QuerySet, Subquery
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from accounts.admin import ReasonActionForm, act_on_each, action_reason
from accounts.models import User
from accounts.services import user_deactivate
from core.errors import ServiceError
from messaging.models import Message, MessageEdit, Reaction, Report
from messaging.services import message_delete, reaction_remove, report_close
from rooms.services import member_ban

# Messages shown on either side of a reported one.
CONTEXT_MESSAGES = 5


class MessageEditInline(admin.TabularInline):
    model = MessageEdit
    extra = 0
    readonly_fields = ("body", "edited_at")
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Message | None = None) -> bool:
        return False


def _ban_author(moderator: User, message: Message, reason: str) -> None:
    member_ban(
        actor=moderator,
        room=message.room,
        user_id=message.author_id,
        reason=reason,
        site_moderator=True,
        via="admin",
    )


def _deactivate_author(moderator: User, message: Message, reason: str) -> None:
    user_deactivate(user=message.author, actor=moderator, reason=reason, via="admin")


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "room", "author", "short_body", "created_at", "edited_at", "deleted_at")
    list_filter = (
        ("room", admin.RelatedOnlyFieldListFilter),
        ("author", admin.RelatedOnlyFieldListFilter),
        "created_at",
        ("deleted_at", admin.EmptyFieldListFilter),
        "room__kind",
    )
    search_fields = ("body", "author__username", "room__name", "=room__id", "=author__id")
    list_select_related = ("room", "author")
    fields = (
        "room",
        "author",
        "body",
        "html",
        "client_id",
        "parent",
        "mentions",
        "created_at",
        "edited_at",
        "deleted_at",
    )
    date_hierarchy = "created_at"
    inlines = [MessageEditInline]
    actions = ["delete_messages", "ban_authors", "deactivate_authors"]
    action_form = ReasonActionForm

    @admin.display(description="body")
    def short_body(self, message: Message) -> str:
        return message.body[:80]

    @admin.action(description="Delete the selected messages (tombstone, members are told)")
    def delete_messages(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        moderator: User = request.user  # type: ignore[assignment]
        act_on_each(
            self,
            request,
            list(queryset.filter(deleted_at__isnull=True)),
            lambda message, reason: message_delete(actor=moderator, message=message, reason=reason, via="admin"),
            "Deleted {count} message(s).",
        )

    @admin.action(description="Ban the authors of the selected messages from those rooms")
    def ban_authors(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        moderator: User = request.user  # type: ignore[assignment]
        act_on_each(
            self,
            request,
            list(queryset.select_related("room", "author")),
            lambda message, reason: _ban_author(moderator, message, reason),
            "Banned {count} author(s); their sockets left the rooms.",
        )

    @admin.action(description="Deactivate the authors' accounts site-wide (sockets close at once)")
    def deactivate_authors(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        moderator: User = request.user  # type: ignore[assignment]
        authors = {message.author_id: message for message in queryset.select_related("author")}
        act_on_each(
            self,
            request,
            [message for message in authors.values() if message.author.is_active],
            lambda message, reason: _deactivate_author(moderator, message, reason),
            "Deactivated {count} account(s); their sockets were closed.",
        )

    # Messages are posted and edited by their authors only; here they are read and acted on.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Message | None = None) -> bool:
        return False

    # Hard deletion would skip the event record (and Django then drops its
    # bulk-delete action too): delete with the tombstone action.
    def has_delete_permission(self, request: HttpRequest, obj: Message | None = None) -> bool:
        return False


@admin.register(Reaction)
class ReactionAdmin(admin.ModelAdmin):
    """Reactions, read only; removing one goes through the service, so members see it go."""

    list_display = ("emoji", "user", "message", "created_at")
    search_fields = ("emoji", "user__username")
    list_select_related = ("user", "message")
    actions = ["remove_reactions"]
    action_form = ReasonActionForm

    @admin.action(description="Remove the selected reactions (members see them go)")
    def remove_reactions(self, request: HttpRequest, queryset: QuerySet[Reaction]) -> None:
        moderator: User = request.user  # type: ignore[assignment]
        act_on_each(
            self,
            request,
            list(queryset.select_related("user", "message")),
            lambda reaction, reason: reaction_remove(
                user=reaction.user,
                message=reaction.message,
                emoji=reaction.emoji,
                moderator=moderator,
                reason=reason,
                via="admin",
            ),
            "Removed {count} reaction(s).",
        )

    # People react in the app; a reaction added or changed here would reach no one.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Reaction | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Reaction | None = None) -> bool:
        return False


def _person(user: User) -> str:
    """Name a person as moderators read them: display name and @username."""
    if user.shown_name != user.username:
        return f"{user.shown_name} (@{user.username})"
    return f"@{user.username}"


def _and_resolve(moderator: User, report: Report, reason: str, act: Callable[[], object]) -> None:
    """Act on a reported message, then close its case as resolved if the act did not already."""
    act()
    report.refresh_from_db(fields=["status"])
    if report.status == Report.Status.OPEN:
        report_close(actor=moderator, report=report, status=Report.Status.RESOLVED, reason=reason)


# What a moderator can do to a case, from the queue or from a report's own page.
CaseAction = Callable[[User, Report, str], object]
CASE_ACTIONS: dict[str, tuple[str, CaseAction]] = {
    "resolve": (
        "Resolve",
        lambda moderator, report, reason: report_close(
            actor=moderator, report=report, status=Report.Status.RESOLVED, reason=reason
        ),
    ),
    "dismiss": (
        "Dismiss",
        lambda moderator, report, reason: report_close(
            actor=moderator, report=report, status=Report.Status.DISMISSED, reason=reason
        ),
    ),
    "delete_message": (
        "Delete the message",
        lambda moderator, report, reason: _and_resolve(
            moderator,
            report,
            reason,
            lambda: message_delete(actor=moderator, message=report.message, reason=reason, via="admin"),
        ),
    ),
    "ban_author": (
        "Ban the author from the room",
        lambda moderator, report, reason: _and_resolve(
            moderator, report, reason, lambda: _ban_author(moderator, report.message, reason)
        ),
    ),
    "deactivate_author": (
        "Deactivate the author's account",
        lambda moderator, report, reason: _and_resolve(
            moderator, report, reason, lambda: _deactivate_author(moderator, report.message, reason)
        ),
    ),
}


class CaseChangeList(ChangeList):
    """The queue lists cases: all the reports of one message in one status are one row, its first report."""

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet[Report]:
        reports = super().get_queryset(request, exclude_parameters)
        firsts = reports.order_by().values("message_id", "status").annotate(first=Min("id")).values("first")
        case_size = (
            Report.objects.filter(message=OuterRef("message"), status=OuterRef("status"))
            .order_by()
            .values("message")
            .annotate(total=Count("id"))
            .values("total")
        )
        return reports.filter(pk__in=firsts).annotate(case_size=Subquery(case_size))


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    """The moderation queue: one row per reported message, open cases first, each with names, not ids.

    A case's page shows the message in the conversation around it, every
    report of it, and buttons to act on it; acting on a case closes all its
    open reports.
    """

    list_display = (
        "id",
        "status",
        "room",
        "author",
        "excerpt",
        "case_size",
        "reporter_name",
        "reason",
        "created_at",
        "handled_by_name",
    )
    list_display_links = ("id", "excerpt")
    list_filter = ("status", "created_at", ("message__room", admin.RelatedOnlyFieldListFilter))
    search_fields = ("reason", "message__body", "reporter__username", "message__author__username")
    list_select_related = ("message__room", "message__author", "reporter", "handled_by")
    fields = (
        "status",
        "room",
        "author",
        "reported_message",
        "case_reports",
        "handled_by_name",
        "handled_at",
        "conversation",
    )
    readonly_fields = fields
    ordering = ("-id",)
    actions = ["resolve", "dismiss", "delete_messages", "ban_authors", "deactivate_authors"]
    action_form = ReasonActionForm
    change_form_template = "admin/messaging/report/change_form.html"

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return CaseChangeList

    @admin.display(description="room")
    def room(self, report: Report) -> str:
        return str(report.message.room)

    @admin.display(description="author")
    def author(self, report: Report) -> str:
        return _person(report.message.author)

    @admin.display(description="message")
    def excerpt(self, report: Report) -> str:
        return "(deleted)" if report.message.deleted else report.message.body[:80]

    @admin.display(description="reports")
    def case_size(self, report: Report) -> int:
        return getattr(report, "case_size", 1)

    @admin.display(description="first reported by")
    def reporter_name(self, report: Report) -> str:
        return _person(report.reporter)

    @admin.display(description="handled by")
    def handled_by_name(self, report: Report) -> str:
        return _person(report.handled_by) if report.handled_by else "—"

    @admin.display(description="message")
    def reported_message(self, report: Report) -> SafeString:
        message = report.message
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:messaging_message_change", args=[message.pk]),
            "(deleted)" if message.deleted else message.body,
        )

    @admin.display(description="reports of this message")
    def case_reports(self, report: Report) -> SafeString:
        """Every report of the message, oldest first: who, why, when, and where it stands."""
        reports = Report.objects.filter(message_id=report.message_id).select_related("reporter").order_by("id")
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    _person(each.reporter),
                    each.reason,
                    each.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    each.get_status_display(),
                )
                for each in reports
            ),
        )
        return format_html(
            "<table><thead><tr><th>reported by</th><th>reason</th><th>when</th><th>status</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="in context")
    def conversation(self, report: Report) -> SafeString:
        """The reported message among its neighbours in the room, oldest first, the reported one marked."""
        reported = report.message
        around = Message.objects.filter(room_id=reported.room_id).select_related("author")
        before = list(around.filter(id__lt=reported.pk).order_by("-id")[:CONTEXT_MESSAGES])[::-1]
        after = list(around.filter(id__gt=reported.pk).order_by("id")[:CONTEXT_MESSAGES])
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    ("▶ " if message.pk == reported.pk else "") + message.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    _person(message.author),
                    "(deleted)" if message.deleted else message.body,
                )
                for message in [*before, reported, *after]
            ),
        )
        return format_html(
            "<table><thead><tr><th>sent</th><th>author</th><th>message</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    # --- Acting on one case, from its page ---------------------------------------------------------------

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "POST":
            return self._act_on_case(request, object_id)
        report = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if report is not None and report.status == Report.Status.OPEN and self.has_change_permission(request, report):
            context["case_actions"] = [(name, label) for name, (label, _) in CASE_ACTIONS.items()]
        return super().change_view(request, object_id, form_url, context)

    def _act_on_case(self, request: HttpRequest, object_id: str) -> HttpResponse:
        report = self.get_object(request, object_id)
        if report is None:
            raise Http404("No such report.")
        # The form's own save is not offered: everything here is read only, and acts go through the services.
        if not self.has_change_permission(request, report):
            raise PermissionDenied
        back = HttpResponseRedirect(request.path)
        chosen = CASE_ACTIONS.get(request.POST.get("case_action", ""))
        if chosen is None:
            self.message_user(request, "Choose what to do with the report.", messages.ERROR)
            return back
        reason = action_reason(self, request)
        if reason is None:
            return back
        label, act = chosen
        moderator: User = request.user  # type: ignore[assignment]
        try:
            with transaction.atomic():
                act(moderator, report, reason)
        except ServiceError as exc:
            self.message_user(request, f"{label}: {exc.detail}", messages.WARNING)
            return back
        self.message_user(request, f"{label}: done; the case is closed.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:messaging_report_changelist") + "?status__exact=open")

    # --- Acting on selected cases, from the queue -----------------------------------------------------------

    def _act_on_selected(self, request: HttpRequest, queryset: QuerySet[Report], name: str, done: str) -> None:
        moderator: User = request.user  # type: ignore[assignment]
        _, act = CASE_ACTIONS[name]
        act_on_each(
            self,
            request,
            list(queryset.select_related("message__room", "message__author")),
            lambda report, reason: act(moderator, report, reason),
            done,
        )

    @admin.action(description="Resolve the selected cases (acted on)")
    def resolve(self, request: HttpRequest, queryset: QuerySet[Report]) -> None:
        self._act_on_selected(
            request, queryset.filter(status=Report.Status.OPEN), "resolve", "Resolved {count} case(s)."
        )

    @admin.action(description="Dismiss the selected cases (nothing wrong)")
    def dismiss(self, request: HttpRequest, queryset: QuerySet[Report]) -> None:
        self._act_on_selected(
            request, queryset.filter(status=Report.Status.OPEN), "dismiss", "Dismissed {count} case(s)."
        )

    @admin.action(description="Delete the reported messages (resolves their cases)")
    def delete_messages(self, request: HttpRequest, queryset: QuerySet[Report]) -> None:
        self._act_on_selected(request, queryset, "delete_message", "Deleted the messages of {count} case(s).")

    @admin.action(description="Ban the reported authors from those rooms (resolves the cases)")
    def ban_authors(self, request: HttpRequest, queryset: QuerySet[Report]) -> None:
        self._act_on_selected(request, queryset, "ban_author", "Banned the authors of {count} case(s).")

    @admin.action(description="Deactivate the reported authors site-wide (resolves the cases)")
    def deactivate_authors(self, request: HttpRequest, queryset: QuerySet[Report]) -> None:
        self._act_on_selected(request, queryset, "deactivate_author", "Deactivated the authors of {count} case(s).")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Report | None = None) -> bool:
        return False
