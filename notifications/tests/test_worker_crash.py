"""Real worker processes on PostgreSQL: a worker killed in the middle of the pushes loses and doubles none."""

from __future__ import annotations

import signal
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobs.models import Job
from jobs.tests.worker_processes import STOP_TIMEOUT, WorkerProcesses, eventually, worker_processes
from messaging.services import message_post
from notifications.notifier import notifier_batch
from notifications.push import subscription_add
from rooms import services as room_services

pytestmark = [pytest.mark.services("postgres"), pytest.mark.django_db(transaction=True)]

WAIT = 90.0
MESSAGES = 20
KILL_AT = 6  # the push request during which the first worker dies


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[WorkerProcesses]:
    logs = tmp_path / "logs"
    logs.mkdir()
    with worker_processes(logs) as started:
        yield started


def test_a_worker_killed_mid_batch_and_replaced_pushes_each_message_exactly_once(
    alice, bob, receiver, vapid, workers: WorkerProcesses
) -> None:
    dm, _ = room_services.direct_open(creator=alice, user_ids=[bob.pk])
    phone = receiver.browser("phone")
    subscription_add(user=bob, endpoint=phone.endpoint, **phone.keys)
    notifier_batch()  # the notifier's cursor starts here, before the messages
    posted = [message_post(room=dm, author=alice, body=f"message {n}")[0].pk for n in range(MESSAGES)]

    requests = Counter[str]()
    held, release = threading.Event(), threading.Event()

    def hold_one(name: str) -> int | None:
        requests[name] += 1
        if requests[name] != KILL_AT:
            return None
        held.set()
        release.wait(timeout=WAIT)
        return 500  # the worker that sent it is dead: the push was never accepted

    receiver.intercept = hold_one
    environment: dict[str, Any] = {
        "VAPID_PRIVATE_KEY": vapid[0],
        "VAPID_PUBLIC_KEY": vapid[1],
        "VAPID_SUBJECT": "mailto:ops@example.com",
        "PUSH_ALLOW_HTTP": "1",
        "PUSH_DELAY_SECONDS": "0",
        "NOTIFIER_INTERVAL_SECONDS": "1",
        "JOBS_LEASE_SECONDS": "1",
    }
    doomed = workers.start("doomed", **environment)
    assert held.wait(timeout=WAIT), workers.logs()
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=STOP_TIMEOUT)
    release.set()
    workers.start("heir", **environment)

    def all_pushed() -> bool:
        busy = Job.objects.filter(state__in=(Job.State.QUEUED, Job.State.RUNNING), key__startswith="push:")
        return len(phone.received) >= MESSAGES and not busy.exists()

    assert eventually(all_pushed, within=WAIT), workers.logs()
    assert Counter(push["message_id"] for push in phone.received) == dict.fromkeys(posted, 1)
    assert receiver.refused == []
    assert not Job.objects.filter(state=Job.State.DEAD).exists(), workers.logs()
