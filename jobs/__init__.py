"""Background jobs: Django's tasks framework on a table of our own, with retries, leases and a scheduler.

Define a task in an app's `tasks.py` and enqueue it inside the transaction
of the change that causes it; the job row commits (or rolls back) with it::

    from datetime import timedelta

    import jobs

    @jobs.task(max_attempts=5, retry_delay=timedelta(seconds=30))
    def thumbnail_make(file_id: int) -> None: ...

    with transaction.atomic():
        upload = ...
        thumbnail_make.enqueue(upload.pk)

    jobs.every(timedelta(hours=1), some_housekeeping)  # a periodic job, in one line

`python manage.py run_worker` runs them; docs/jobs.md has the guarantees.
"""

from jobs.api import task
from jobs.errors import PermanentError
from jobs.schedule import every

__all__ = ["PermanentError", "every", "task"]
