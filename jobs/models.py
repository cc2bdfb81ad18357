"""The job table: one row per enqueued task, from its enqueueing to its last attempt."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone


class Job(models.Model):
    """A task to run outside a request, written in the transaction of the change that causes it.

    `queued` rows are due at `run_after` (a retry's backoff moves it on);
    `running` rows belong to the worker named in `claimed_by` until
    `lease_until`, which that worker keeps moving while it runs the task;
    `succeeded` and `dead` rows are finished (dead: its attempts are spent or
    it failed for good; the admin can queue it again).
    """

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        DEAD = "dead", "Dead (failed for good)"

    task_path = models.CharField(max_length=200, help_text="The task's module path.")
    queue_name = models.CharField(max_length=32, default="default")
    priority = models.SmallIntegerField(default=0)
    args = models.JSONField(default=list)
    kwargs = models.JSONField(default=dict)
    # At most one job per key: the scheduler's periodic slots use it, so two
    # workers scheduling the same slot write one row.
    key = models.CharField(max_length=200, null=True, blank=True, unique=True)

    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    attempts = models.PositiveIntegerField(default=0, help_text="Attempts started so far.")
    max_attempts = models.PositiveIntegerField(default=1)
    run_after = models.DateTimeField(default=timezone.now, help_text="When the job is (next) due.")
    enqueued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True, help_text="Start of the latest attempt.")
    finished_at = models.DateTimeField(null=True, blank=True)

    claimed_by = models.CharField(max_length=100, blank=True, help_text="The worker running the current attempt.")
    lease_until = models.DateTimeField(null=True, blank=True)
    worker_ids = models.JSONField(default=list, help_text="The worker of each attempt, in order.")

    error_class = models.CharField(max_length=200, blank=True)
    last_error = models.TextField(blank=True)
    return_value = models.JSONField(null=True, blank=True)

    class Meta:
        indexes = [
            # What a worker asks for: due jobs, highest priority first, then oldest.
            models.Index(
                fields=["queue_name", "-priority", "run_after", "id"],
                name="jobs_due_idx",
                condition=Q(state="queued"),
            ),
            # Attempts whose worker stopped renewing its lease.
            models.Index(fields=["lease_until"], name="jobs_lease_idx", condition=Q(state="running")),
            models.Index(fields=["state", "finished_at"], name="jobs_state_finished_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.task_name} #{self.pk} ({self.state})"

    @property
    def task_name(self) -> str:
        return self.task_path.rsplit(".", 1)[-1]
