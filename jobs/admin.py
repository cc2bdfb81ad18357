"""Jobs in the admin: what is queued, running, finished or dead, and queueing dead ones again."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from jobs.models import Job
from jobs.services import job_retry


class DeadLetterFilter(admin.SimpleListFilter):
    title = "dead letters"
    parameter_name = "dead"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Job]) -> list[tuple[str, str]]:
        return [("1", "Dead only"), ("0", "Everything else")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        if self.value() == "1":
            return queryset.filter(state=Job.State.DEAD)
        if self.value() == "0":
            return queryset.exclude(state=Job.State.DEAD)
        return queryset


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "task_name", "state", "attempt_count", "run_after", "last_error_line", "finished_at")
    list_filter = (DeadLetterFilter, "state", "queue_name", "task_path")
    search_fields = ("=id", "task_path", "key")
    ordering = ("-id",)
    actions = ["retry_jobs"]
    readonly_fields = (
        "task_path",
        "queue_name",
        "priority",
        "args",
        "kwargs",
        "key",
        "state",
        "attempts",
        "max_attempts",
        "run_after",
        "enqueued_at",
        "started_at",
        "finished_at",
        "claimed_by",
        "lease_until",
        "worker_ids",
        "error_class",
        "error_traceback",
        "return_value",
    )
    exclude = ("last_error",)

    @admin.display(description="task", ordering="task_path")
    def task_name(self, job: Job) -> str:
        return job.task_name

    @admin.display(description="attempts", ordering="attempts")
    def attempt_count(self, job: Job) -> str:
        return f"{job.attempts} of {job.max_attempts}"

    @admin.display(description="last error")
    def last_error_line(self, job: Job) -> str:
        lines = [line for line in job.last_error.strip().splitlines() if line.strip()]
        return lines[-1][:160] if lines else ""

    @admin.display(description="last error")
    def error_traceback(self, job: Job) -> SafeString | str:
        return format_html("<pre>{}</pre>", job.last_error) if job.last_error else "-"

    @admin.action(description="Queue the selected dead jobs again (fresh attempts, due now)", permissions=["retry"])
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        retried = sum(job_retry(job_id) for job_id in queryset.values_list("id", flat=True))
        skipped = queryset.count() - retried
        self.message_user(request, f"Queued {retried} dead job(s) again.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"Left {skipped} job(s) that were not dead.", messages.WARNING)

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("jobs.change_job")

    # Jobs are written by the code that enqueues them and by workers; the admin reads and retries.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        # A running job's worker would find its row gone; finished ones may go.
        return super().has_delete_permission(request, obj) and (obj is None or obj.state != Job.State.RUNNING)
