"""Measure one `@channel` to a room of offline members: the notifier, the check, and the pushes.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chat \\
        .venv/bin/python bench/notify_fanout.py --members 1000 --workers 2 --out bench/results/notify-fanout.json

PostgreSQL only. The tool uses its own database (`--db-name`, default
`chatbench_notify`) on the server DATABASE_URL names, recreates it and
migrates it, then seeds `--members` users, a public channel they are all in
(memberships written in bulk, not through the services: the measured path
starts at the message) and one Web Push subscription each, pointing at a push
service on loopback (the tests' receiver: it verifies every VAPID signature
and decrypts every payload, as a real push service would, in this process).

It posts one `@channel` message through `message_post` as the channel's
owner and runs `--workers` real `manage.py run_worker` processes with the
scheduler (PUSH_DELAY_SECONDS=0). It records when the notifier had decided
(the message's Notification rows exist), when the check had queued the
pushes, and when the receiver had every push, and the worker throughput in
pushes a second. Bounded by `--timeout` seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))


def _vapid_keys() -> tuple[str, str]:
    """A VAPID pair, made before Django starts (the settings read it from the environment)."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    raw_private = key.private_numbers().private_value.to_bytes(32, "big")
    raw_public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return tuple(base64.urlsafe_b64encode(raw).rstrip(b"=").decode() for raw in (raw_private, raw_public))  # type: ignore[return-value]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--db-name", default="chatbench_notify")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    server = os.environ.get("DATABASE_URL", "")
    if not server.startswith("postgres"):
        parser.error("set DATABASE_URL to a postgres:// server")
    parts = urlsplit(server)
    database_url = urlunsplit(parts._replace(path=f"/{args.db_name}"))
    import psycopg

    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{args.db_name}"')
        admin.execute(f'CREATE DATABASE "{args.db_name}"')
    os.environ.update(
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="chatproject.settings",
        DEBUG="1",
        TESTING="1",
        REDIS_URL="",
        PUSH_ALLOW_HTTP="1",
        PUSH_DELAY_SECONDS="0",
        NOTIFIER_INTERVAL_SECONDS="1",
        JOBS_POLL_SECONDS="0.05",
        JOBS_WORKER_LISTEN="",
    )
    private, public = _vapid_keys()
    os.environ.update(VAPID_PRIVATE_KEY=private, VAPID_PUBLIC_KEY=public, VAPID_SUBJECT="mailto:bench@example.com")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=PROJECT_DIR, check=True, timeout=300)

    import django

    django.setup()
    from accounts.models import User
    from jobs.models import Job
    from messaging.services import message_post
    from notifications.models import Notification, PushSubscription
    from notifications.notifier import notifier_batch
    from notifications.tests.conftest import PushReceiver
    from rooms import services as room_services
    from rooms.models import Membership

    receiver = PushReceiver(public)
    owner = User.objects.create_user(username="owner", email="owner@example.com", password=None)
    room = room_services.room_create(creator=owner, name="everyone")
    users = User.objects.bulk_create(
        [User(username=f"member{n}", email=f"member{n}@example.com") for n in range(args.members)]
    )
    Membership.objects.bulk_create([Membership(room=room, user=user) for user in users])
    subscriptions = []
    for user in users:
        browser = receiver.browser(f"m{user.pk}")
        subscriptions.append(PushSubscription(user=user, endpoint=browser.endpoint, **browser.keys))
    PushSubscription.objects.bulk_create(subscriptions)
    notifier_batch()  # the cursor starts before the message

    workers = [
        subprocess.Popen(
            [sys.executable, "manage.py", "run_worker"],
            cwd=PROJECT_DIR,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(args.workers)
    ]
    try:
        time.sleep(3)  # the workers start (imports, first poll) before the clock starts
        started = time.monotonic()
        message, _ = message_post(room=room, author=owner, body="@channel the building closes at 6")
        marks: dict[str, float] = {}
        deadline = started + args.timeout
        while time.monotonic() < deadline:
            now = time.monotonic() - started
            if "decided" not in marks and Notification.objects.filter(message=message).count() == args.members:
                marks["decided"] = now
            if "queued" not in marks and Job.objects.filter(key__startswith="push:").count() == args.members:
                marks["queued"] = now
            received = sum(len(browser.received) for browser in receiver.browsers.values())
            if received >= args.members:
                marks["delivered"] = now
                break
            time.sleep(0.05)
        received = sum(len(browser.received) for browser in receiver.browsers.values())
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)
        receiver.close()
    pushing = marks.get("delivered", 0) - marks.get("queued", 0)
    result = {
        "members": args.members,
        "workers": args.workers,
        "pushes_received": received,
        "refused_by_receiver": len(receiver.refused),
        "seconds_to_decided": round(marks.get("decided", -1), 2),
        "seconds_to_pushes_queued": round(marks.get("queued", -1), 2),
        "seconds_to_all_delivered": round(marks.get("delivered", -1), 2),
        "pushes_per_second": round(args.members / pushing, 1) if pushing > 0 else None,
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if received == args.members and not receiver.refused else 1


if __name__ == "__main__":
    sys.exit(main())
