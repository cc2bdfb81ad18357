"""Measure 50 people opening one room page that shows 50 image thumbnails, all at once.

    .venv/bin/python bench/thumbnail_page.py --out bench/results/thumbnail-page.json

It starts the real server as bench/loadtest.py does (Daphne serving
`chatproject.asgi` in production mode, its own database, files in a
temporary MEDIA_ROOT, rate limits off), seeds `--people` members of one
channel and `--images` messages each carrying one 1600×1200 JPEG, made
through the upload and posting services, with every thumbnail made by the
job the upload queues (run in-process by the seeding). Then `--people`
clients start together, each as a browser would: the newest page of
history (`GET rooms/{id}/messages/?limit=50`), then every thumbnail URL the
page names over `--connections` keep-alive connections at once (6, a
browser's limit per host over HTTP/1.1; 1 asks for them one after the
other). The first round is a cold browser. Each further round (`--rounds`)
is the same person coming back after the thumbnails' `max-age` ran out: every
thumbnail asked for again with `If-None-Match` (304 expected). Within the
`max-age` a browser asks for none of them, which needs no measuring.

It records the server process's CPU per request in each round (which the
machine's other load disturbs far less than the latencies), per request
kind p50/p95/p99/max milliseconds, and per person the time to the whole
page (history and all thumbnails), cold and revalidated apart. JSON goes to
`--out`.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import queue
import secrets
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))
sys.path.insert(1, str(PROJECT_DIR / "bench"))

from loadtest import HOST, OurServer, cpu_seconds, machine, summarize_ms  # noqa: E402

KINDS = ("history", "thumbnail", "page", "thumbnail_revalidated", "page_revalidated")

SEED_SNIPPET = """
import io, json, os
from PIL import Image
from accounts.models import User
from files.services import thumbnail_store, upload_store
from messaging.services import message_post
from rest_framework_simplejwt.tokens import AccessToken
from rooms import services
spec = json.load(open(os.environ["BENCH_SEED_SPEC"]))
names = [f"{spec['prefix']}p{i}" for i in range(spec["people"])]
people = [User.objects.create_user(username=name, email="", password=None) for name in names]
room = services.room_create(creator=people[0], name=f"{spec['prefix']} photos")
for person in people[1:]:
    services.room_join(user=person, room=room)
for number in range(spec["images"]):
    picture = Image.new("RGB", (1600, 1200), ((number * 37) % 256, 90, 160))
    data = io.BytesIO()
    picture.save(data, format="JPEG", quality=85)
    size = data.tell()
    data.seek(0)
    stored = upload_store(room_id=room.pk, uploader=people[0], upload=data, name=f"photo{number}.jpg", size=size)
    message_post(room=room, author=people[0], body="", attachments=[stored.pk])
    thumbnail_store(stored.pk)
print("BENCH_SEED " + json.dumps({"tokens": [str(AccessToken.for_user(p)) for p in people], "room": room.pk}))
"""


def person(port: int, token: str, room: int, start: threading.Event, out: dict[str, Any]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    pool = queue.SimpleQueue[http.client.HTTPConnection]()
    for _ in range(out["connections"]):
        pool.put(http.client.HTTPConnection(HOST, port, timeout=60))
    etags: dict[str, str] = {}
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}

    def thumbnail(url: str, revalidate: bool) -> None:
        connection = pool.get()
        try:
            asked = time.perf_counter()
            sent = {**headers, "If-None-Match": etags[url]} if revalidate else headers
            connection.request("GET", url, headers=sent)
            answer = connection.getresponse()
            body = answer.read()
            if revalidate:
                assert answer.status == 304 and not body, answer.status
            else:
                assert answer.status == 200 and body[:4] == b"RIFF", answer.status
                etags[url] = answer.headers["ETag"]
            times["thumbnail_revalidated" if revalidate else "thumbnail"].append(time.perf_counter() - asked)
        finally:
            pool.put(connection)

    start.wait()
    with ThreadPoolExecutor(max_workers=out["connections"]) as fetchers:
        for number in range(out["rounds"]):
            revalidate = number > 0
            began = time.perf_counter()
            connection = pool.get()
            connection.request("GET", f"/api/v1/rooms/{room}/messages/?limit=50", headers=headers)
            response = connection.getresponse()
            page = json.loads(response.read())
            pool.put(connection)
            times["history"].append(time.perf_counter() - began)
            urls = [item["thumbnail_url"] for message in page["results"] for item in message["attachments"]]
            assert len(urls) == out["images"] and all(urls), "every message shows its thumbnail"
            for done in [fetchers.submit(thumbnail, url, revalidate) for url in urls]:
                done.result()
            times["page_revalidated" if revalidate else "page"].append(time.perf_counter() - began)
            # Everyone finishes a round before the next begins, so the server's CPU splits by round.
            out["round_over"].wait()
    while not pool.empty():
        pool.get().close()
    with out["lock"]:
        for kind in KINDS:
            out[kind].extend(times[kind])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=50)
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=6, help="per person, for the thumbnails")
    parser.add_argument("--db-name", default="chatbench_thumbnails")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-thumbnails-"))
    server = OurServer(args, secrets.token_hex(4), workdir)
    server.env.update(MEDIA_ROOT=str(workdir / "media"))
    server.prepare_database()
    spec = workdir / "seed.json"
    spec.write_text(json.dumps({"prefix": f"t{server.run_id[:6]}", "people": args.people, "images": args.images}))
    output = server._manage("shell", "-c", SEED_SNIPPET, extra_env={"BENCH_SEED_SPEC": str(spec)})
    seeded = json.loads(next(line for line in output.splitlines() if line.startswith("BENCH_SEED ")).split(" ", 1)[1])
    server.start()
    results: dict[str, Any] = {
        "rounds": args.rounds,
        "images": args.images,
        "connections": args.connections,
        "lock": threading.Lock(),
        "round_over": threading.Barrier(len(seeded["tokens"]), action=lambda: cpu_marks.append(server_cpu())),
        **{kind: [] for kind in KINDS},
    }
    start = threading.Event()
    cpu_marks: list[float] = []

    def server_cpu() -> float:
        return cpu_seconds(server.pid)

    threads = [
        threading.Thread(target=person, args=(server.port, token, seeded["room"], start, results))
        for token in seeded["tokens"]
    ]
    try:
        for thread in threads:
            thread.start()
        began = time.perf_counter()
        cpu_marks.append(server_cpu())
        start.set()
        for thread in threads:
            thread.join(timeout=600)
        elapsed = time.perf_counter() - began
    finally:
        server.stop()
    summary = {
        "people": args.people,
        "images": args.images,
        "rounds": args.rounds,
        "connections_per_person": args.connections,
        "database": server.database,
        "machine": machine(),
        "seconds": round(elapsed, 2),
        "requests": sum(len(results[kind]) for kind in ("history", "thumbnail", "thumbnail_revalidated")),
        "history_page": summarize_ms(results["history"]),
        "thumbnail": summarize_ms(results["thumbnail"]),
        "whole_page": summarize_ms(results["page"]),
        "thumbnail_revalidated": summarize_ms(results["thumbnail_revalidated"]),
        "whole_page_revalidated": summarize_ms(results["page_revalidated"]),
        # The Daphne process's CPU (user + system) per request of each round: first the cold one.
        "server_cpu_ms_per_request_by_round": [
            round((after - before) * 1000 / (args.people * (1 + args.images)), 2)
            for before, after in itertools.pairwise(cpu_marks)
        ],
    }
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
