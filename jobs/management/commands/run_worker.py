"""Run jobs: `python manage.py run_worker` (docs/jobs.md). SIGTERM or Ctrl-C lets the job in hand finish."""

from __future__ import annotations

import signal
from datetime import timedelta
from importlib import import_module
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.utils.module_loading import autodiscover_modules

from jobs import metrics
from jobs.backend import known_task_paths
from jobs.worker import Worker


class Command(BaseCommand):
    help = "Run background jobs and the periodic scheduler until SIGTERM (the job in hand finishes first)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--queue",
            action="append",
            dest="queues",
            help="Take jobs from this queue only (repeat for several; default: every queue).",
        )
        parser.add_argument("--no-scheduler", action="store_true", help="Do not enqueue periodic jobs.")
        parser.add_argument("--max-jobs", type=int, default=None, help="Exit after running this many jobs.")
        parser.add_argument("--exit-when-idle", action="store_true", help="Exit once no job is due.")
        parser.add_argument(
            "--tasks-module",
            action="append",
            default=[],
            help="Import tasks from this module too (each app's tasks.py is imported anyway).",
        )

    def handle(
        self,
        *args: Any,
        queues: list[str] | None = None,
        no_scheduler: bool = False,
        max_jobs: int | None = None,
        exit_when_idle: bool = False,
        tasks_module: list[str],
        **options: Any,
    ) -> None:
        # Tasks register themselves when their module is imported: every app's tasks.py.
        autodiscover_modules("tasks")
        for module in tasks_module:
            import_module(module)
        metrics.tasks_expected(path.rsplit(".", 1)[-1] for path in known_task_paths())
        worker = Worker(
            queues=queues,
            lease=timedelta(seconds=settings.JOBS_LEASE_SECONDS),
            poll_interval=settings.JOBS_POLL_SECONDS,
            scheduler=not no_scheduler,
        )
        if settings.JOBS_WORKER_LISTEN:
            metrics.serve(settings.JOBS_WORKER_LISTEN, healthy=worker.healthy)

        def stop(signum: int, frame: FrameType | None) -> None:
            # The first signal finishes the job in hand; a second one ends the process at
            # once (the job's lease then lapses and another worker runs it again).
            worker.request_stop()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        worker.run(max_jobs=max_jobs, exit_when_idle=exit_when_idle)
