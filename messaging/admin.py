"""Moderation in the Django admin: the reports queue, message search, and actions that go through the services.

Every action asks for a reason (the action bar's Reason field) and is
written to the moderation log by the service it calls.
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from accounts.admin import ReasonActionForm, act_on_each
from accounts.models import User
from accounts.services import user_deactivate
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


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    """The moderation queue: open reports first, each with its message in the conversation around it."""

    list_display = ("id", "status", "room", "author", "excerpt", "reporter", "reason", "created_at", "handled_by")
    list_filter = ("status", "created_at", ("message__room", admin.RelatedOnlyFieldListFilter))
    search_fields = ("reason", "message__body", "reporter__username", "message__author__username")
    list_select_related = ("message__room", "message__author", "reporter", "handled_by")
    readonly_fields = (
        "status",
        "message",
        "reporter",
        "reason",
        "created_at",
        "handled_by",
        "handled_at",
        "conversation",
    )
    fields = readonly_fields
    ordering = ("-id",)
    actions = ["resolve", "dismiss", "delete_messages", "ban_authors", "deactivate_authors"]
    action_form = ReasonActionForm

    @admin.display(description="room")
    def room(self, report: Report) -> str:
        return str(report.message.room)

    @admin.display(description="author")
    def author(self, report: Report) -> str:
        return str(report.message.author)

    @admin.display(description="message")
    def excerpt(self, report: Report) -> str:
        return "(deleted)" if report.message.deleted else report.message.body[:80]

    @admin.display(description="in context")
    def conversation(self, report: Report) -> SafeString:
        """The reported message among its neighbours in the room, oldest first, the reported one marked."""
        reported = report.message
        around = Message.objects.filter(room_id=reported.room_id).select_related("author")
        before = list(around.filter(id__lt=reported.pk).order_by("-id")[:CONTEXT_MESSAGES])[::-1]
        after = list(around.filter(id__gt=reported.pk).order_by("id")[:CONTEXT_MESSAGES])
        rows = format_html_join(
            "",
            "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    "▶ " if message.pk == reported.pk else "",
                    message.pk,
                    message.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    message.author.username,
                    "(deleted)" if message.deleted else message.body,
                )
                for message in [*before, reported, *after]
            ),
        )
        return format_html(
            "<table><thead><tr><th>id</th><th>sent</th><th>author</th><th>message</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            rows,
        )

    def _close(self, request: HttpRequest, queryset: QuerySet[Report], status: str, done: str) -> None:
        moderator: User = request.user  # type: ignore[assignment]
        act_on_each(
            self,
            request,
            list(queryset.filter(status=Report.Status.OPEN)),
            lambda report, reason: report_close(actor=moderator, report=report, status=status, reason=reason),
            done,
        )

    @admin.action(description="Resolve the selected reports (acted on)")
    def resolve(self, request: HttpRequest, queryset: QuerySet[Report]) -> None:
        self._close(request, queryset, Report.Status.RESOLVED, "Resolved {count} report(s).")

    @admin.action(description="Dismiss the selected reports (nothing wrong)")
    def dismiss(self, request: HttpRequest, queryset: QuerySet[Report]) -> None:
        self._close(request, queryset, Report.Status.DISMISSED, "Dismissed {count} report(s).")

    def _and_resolve(self, moderator: User, report: Report, reason: str, act: Callable[[], None]) -> None:
        act()
        report.refresh_from_db(fields=["status"])
        if report.status == Report.Status.OPEN:
            report_close(actor=moderator, report=report, status=Report.Status.RESOLVED, reason=reason)

    @admin.action(description="Delete the reported messages (resolves their reports)")
    def delete_messages(self, request: HttpRequest, queryset: QuerySet[Report]) -> None:
        moderator: User = request.user  # type: ignore[assignment]
        act_on_each(
            self,
            request,
            list(queryset.select_related("message")),
            lambda report, reason: self._and_resolve(
                moderator,
                report,
                reason,
                lambda: message_delete(actor=moderator, message=report.message, reason=reason, via="admin"),
            ),
            "Deleted the messages of {count} report(s).",
        )

    @admin.action(description="Ban the reported authors from those rooms (resolves the reports)")
    def ban_authors(self, request: HttpRequest, queryset: QuerySet[Report]) -> None:
        moderator: User = request.user  # type: ignore[assignment]
        act_on_each(
            self,
            request,
            list(queryset.select_related("message__room", "message__author")),
            lambda report, reason: self._and_resolve(
                moderator, report, reason, lambda: _ban_author(moderator, report.message, reason)
            ),
            "Banned the authors of {count} report(s).",
        )

    @admin.action(description="Deactivate the reported authors site-wide (resolves the reports)")
    def deactivate_authors(self, request: HttpRequest, queryset: QuerySet[Report]) -> None:
        moderator: User = request.user  # type: ignore[assignment]
        act_on_each(
            self,
            request,
            list(queryset.select_related("message__author")),
            lambda report, reason: self._and_resolve(
                moderator, report, reason, lambda: _deactivate_author(moderator, report.message, reason)
            ),
            "Deactivated the authors of {count} report(s).",
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Report | None = None) -> bool:
        return False
