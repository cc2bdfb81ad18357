"""Load-test the whole server over real WebSockets, next to a naive Channels app and a bare ceiling.

    .venv/bin/python bench/loadtest.py fanout --rates 20,50,100 --seconds 10 --out bench/results/fanout.json
    .venv/bin/python bench/loadtest.py idle --sockets 1000
    .venv/bin/python bench/loadtest.py rooms --rates 100,250,500
    .venv/bin/python bench/loadtest.py storm --sockets 500

The tool starts the server itself: Daphne (`chatproject.asgi`) on a free
loopback port with a listen backlog of 1024, production settings (DEBUG=0,
a generated SECRET_KEY, LOG_LEVEL=WARNING) and RATELIMIT_ENABLE=0, pinned
to CPU 0 with `taskset` while this load generator pins itself to CPU 1.
With DATABASE_URL set it uses that PostgreSQL server but its own database
(`--db-name`, default `chatbench`, created and migrated when missing);
otherwise a temporary SQLite file. With REDIS_URL set the server uses Redis
(pub/sub channel layer and cache) under a fresh `bench-<run>` prefix;
otherwise the in-memory layer. Users, rooms and access tokens are made by
one `manage.py shell -c` snippet calling the services, so rooms and
memberships are the real thing.

`--target all` (the default) runs the same scenario against this server,
then against `bench/naive_channels` (the Channels tutorial design in
Daphne: a consumer per socket, a channel-layer group per room, one
`group_send` per message, nothing stored; RedisChannelLayer, or
RedisPubSubChannelLayer with `--naive-layer pubsub`, under a fresh
`naive-<run>` prefix), then against `bench/ceiling_server.py` (a bare
`websockets` server, one Redis PUBLISH per message, one subscription with
local fan-out; no Django, no database), so every figure has its ratios
(ours/ceiling, ours/naive, naive/ceiling) from the same run and machine.
`--target both` is ours and the ceiling; `ours`, `naive`, `ceiling` one
alone. Both references trust a token naming the user and its rooms and
replay `?last_event_id` from memory. A target that fails to run gets an
n/a row with the reason, and the others still run.

Scenarios (sizes are flags; every run is bounded by --seconds per phase, a
drain of at most --drain-max seconds and --timeout overall):

idle    --sockets sockets of users in no room connect (at most
        --connect-concurrency handshakes in flight) and stay open for
        --seconds: connect p50/p99/max, failures, server RSS per socket.
fanout  one room of --members members; each rate of --rates (msg/s) is sent
        for --seconds, open loop, from ceil(rate/5) members in turn (each
        under the server's 10 frames/s per socket).
rooms   --room-count rooms of --members members; each rate of --rates is
        spread over every member in turn (500 msg/s over 500 members is 1/s
        each).
storm   --sockets clients in rooms of --members, plus sender sockets posting
        --rate msg/s across those rooms all along; every client drops at
        once (the TCP connection aborted), stays away --away seconds, then
        all reconnect with ?last_event_id=<highest seen>: time until the
        last one has resume.done and every message sent before the
        reconnection began, and what was lost or doubled. A failed
        handshake is retried (--storm-retries, backing off from 0.5 s), as
        the CLI client does; `retried` counts those failures.

Each `message.send` carries a unique client_id and its send time in the
body. Per receiver the tool counts every message.new by client_id:
**undeliv** = (messages accepted × members of their room) − distinct
deliveries when the drain ended; **unposted** = messages whose sender never
got its own message.new (still queued in the server, or dropped with its
socket at the end); **lost** = deliveries missing for messages the server
did post (the sender got them; some member did not); **dup** = deliveries
seen twice; **ooo** = deliveries with an event_id below one the socket
already had. Latency is send → receive in
this process (perf_counter). Server CPU is utime+stime of the server
process from /proc, RSS its VmRSS; `db+redis CPU` adds the postgres and
redis-server processes on the machine (whoever they serve). `gen CPU` is
this process: near 100 % means the generator, not the server, was the
limit. `µs CPU/deliv` is the server's CPU over the phase by deliveries.

The naive reference numbers messages in the order their `message.send`
reached it, but two `group_send`s in flight at once can reach the sockets
the other way round (the layer keeps no order between senders): `ooo`
counts that. Its core layer drops silently at capacity (100), in two
places: the process's Redis queue, where a message is dropped for every
socket of the process, the sender's too (it shows as `unposted` and
`undeliv`, not `lost`), and each consumer's own queue (`lost`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import websockets
from websockets.asyncio.client import ClientConnection, connect

PROJECT_DIR = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Frames per second a sender socket sends: half the server's per-socket limit (10/s, burst 20).
SENDER_RATE = 5.0
# Sockets opened before the memory baseline is read.
WARM_SOCKETS = 20


# --- Statistics ---------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Return the q-th percentile (0–100) of values by nearest rank; 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarize_ms(seconds: Sequence[float]) -> dict[str, float]:
    """Return p50/p95/p99/max of durations in seconds, as rounded milliseconds."""
    ordered = sorted(seconds)
    return {
        "p50_ms": round(percentile(ordered, 50) * 1000, 1),
        "p95_ms": round(percentile(ordered, 95) * 1000, 1),
        "p99_ms": round(percentile(ordered, 99) * 1000, 1),
        "max_ms": round((ordered[-1] if ordered else 0.0) * 1000, 1),
    }


def count_order(event_ids: Iterable[int]) -> int:
    """Return how many ids arrive below the highest id seen before them."""
    highest = -1
    out_of_order = 0
    for event_id in event_ids:
        if event_id < highest:
            out_of_order += 1
        highest = max(highest, event_id)
    return out_of_order


# --- Processes ------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """Return user+system CPU seconds of a process (0.0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def backing_cpu_seconds() -> dict[int, float]:
    """Return the CPU seconds of every postgres and redis-server process on the machine, by pid."""
    found: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if comm.startswith(("postgres", "redis-server")):
            found[int(entry.name)] = cpu_seconds(int(entry.name))
    return found


def backing_cpu_since(before: dict[int, float]) -> float:
    """Return the CPU those processes used since `before`, per pid: a backend that exited in
    between is left out (its last seconds are lost) instead of subtracting its whole life."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in backing_cpu_seconds().items())


DAPHNE_ARGS = [
    "--websocket-max-message-size",
    "131072",
    "--websocket-max-frame-size",
    "131072",
    "--websocket_connect_timeout",
    "20",
]


def start_daphne(
    port: int, application: str, extra_args: list[str], cwd: Path, env: dict[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    """Start Daphne on `port` with a listen backlog of 1024, pinned to CPU 0, logging to `log_path`."""
    command = [
        sys.executable,
        "-m",
        "daphne",
        "-e",
        f"tcp:port={port}:interface={HOST}:backlog=1024",
        *extra_args,
        application,
    ]
    with log_path.open("ab") as log:
        return subprocess.Popen(  # noqa: S603 (our own interpreter, fixed arguments)
            pinned(command, 0), cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def pinned(command: list[str], cpu: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > cpu:
        return ["taskset", "-c", str(cpu), *command]
    return command


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"server did not listen on {port} within {timeout:.0f} s")


# --- Targets --------------------------------------------------------------------------------


@dataclass
class Seeded:
    """What the clients need: per user a token and rooms, and the room ids."""

    tokens: list[str]
    rooms: list[int]


SEED_SNIPPET = """
import json, os
from accounts.models import User
from rooms import services
from rest_framework_simplejwt.tokens import AccessToken
spec = json.load(open(os.environ["BENCH_SEED_SPEC"]))
prefix = spec["prefix"]
User.objects.bulk_create(
    [User(username=f"{prefix}u{i}", email="", password="!") for i in range(spec["users"])], batch_size=1000
)
users = {u.username: u for u in User.objects.filter(username__startswith=f"{prefix}u")}
ordered = [users[f"{prefix}u{i}"] for i in range(spec["users"])]
room_ids = []
for number, members in enumerate(spec["rooms"]):
    room = services.room_create(creator=ordered[members[0]], name=f"{prefix}r{number}")
    for member in members[1:]:
        services.room_join(user=ordered[member], room=room)
    room_ids.append(room.pk)
tokens = [str(AccessToken.for_user(user)) for user in ordered]
print("BENCH_SEED " + json.dumps({"tokens": tokens, "rooms": room_ids}))
"""


class Target:
    name = ""
    pid = 0
    port = 0
    process: subprocess.Popen[bytes] | None = None
    log_path: Path

    def ws_url(self, cursor: int | None = None) -> str:
        query = f"?last_event_id={cursor}" if cursor is not None else ""
        return f"ws://{HOST}:{self.port}/ws/{query}"

    def seed(self, users: int, rooms: list[list[int]]) -> Seeded:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


class OurServer(Target):
    """Daphne serving chatproject.asgi in production mode, on its own database."""

    name = "ours"

    def __init__(self, args: argparse.Namespace, run_id: str, workdir: Path) -> None:
        self.run_id = run_id
        self.workdir = workdir
        self.log_path = workdir / "daphne.log"
        self.env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "CHAT_TEST_"))}
        self.env.update(
            DJANGO_SETTINGS_MODULE="chatproject.settings",
            DEBUG="0",
            TESTING="0",
            SECRET_KEY=secrets.token_urlsafe(50),
            ALLOWED_HOSTS=HOST,
            HTTPS_ONLY="0",
            TLS_PROXY="0",
            RATELIMIT_ENABLE="0",
            LOG_LEVEL="WARNING",
            LOG_FORMAT="console",
            JWT_ACCESS_MINUTES="600",
            CHANNEL_PREFIX=f"bench-{run_id}",
            CACHE_PREFIX=f"bench-{run_id}",
            PYTHONUNBUFFERED="1",
        )
        database_url = os.environ.get("DATABASE_URL", "")
        if database_url:
            parts = urlsplit(database_url)
            self.env["DATABASE_URL"] = urlunsplit(parts._replace(path=f"/{args.db_name}"))
            self.maintenance_url = urlunsplit(parts._replace(path="/postgres"))
            self.db_name = args.db_name
        else:
            self.env.pop("DATABASE_URL", None)
            self.env["SQLITE_PATH"] = str(workdir / "bench.sqlite3")
            self.db_name = ""
        self.database = "postgresql" if database_url else "sqlite"
        self.redis = bool(os.environ.get("REDIS_URL"))

    def _manage(self, *arguments: str, extra_env: dict[str, str] | None = None) -> str:
        result = subprocess.run(  # noqa: S603 (our own interpreter, fixed arguments)
            [sys.executable, "manage.py", *arguments],
            cwd=PROJECT_DIR,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {arguments[0]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
        return result.stdout

    def prepare_database(self) -> None:
        if self.db_name:
            import psycopg

            with psycopg.connect(self.maintenance_url, autocommit=True) as connection:
                found = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [self.db_name]).fetchone()
                if found is None:
                    connection.execute(f'CREATE DATABASE "{self.db_name}"')
        self._manage("migrate", "--noinput")

    def seed(self, users: int, rooms: list[list[int]]) -> Seeded:
        spec_path = self.workdir / "seed.json"
        spec_path.write_text(json.dumps({"prefix": f"b{self.run_id[:6]}", "users": users, "rooms": rooms}))
        output = self._manage("shell", "-c", SEED_SNIPPET, extra_env={"BENCH_SEED_SPEC": str(spec_path)})
        line = next(line for line in output.splitlines() if line.startswith("BENCH_SEED "))
        data = json.loads(line.removeprefix("BENCH_SEED "))
        return Seeded(tokens=data["tokens"], rooms=data["rooms"])

    def start(self) -> None:
        self.port = free_port()
        # As `make run` and the deployment files start it (see the Makefile's DAPHNE_ARGS).
        self.process = start_daphne(
            self.port, "chatproject.asgi:application", DAPHNE_ARGS, PROJECT_DIR, self.env, self.log_path
        )
        self.pid = self.process.pid
        wait_for_port(self.port, self.process, self.log_path)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://{HOST}:{self.port}/healthz", timeout=5) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.2)

    def cleanup(self) -> None:
        redis_url = os.environ.get("REDIS_URL")
        if not redis_url:
            return
        import redis

        client = redis.Redis.from_url(redis_url)
        with contextlib.suppress(Exception):
            for key in client.scan_iter(match=f"*bench-{self.run_id}*", count=1000):
                client.delete(key)


def trusted_tokens(users: int, rooms: list[list[int]]) -> Seeded:
    """Seed the ceiling and the naive reference: the token names the user and its rooms, and they trust it."""
    of_user: list[list[int]] = [[] for _ in range(users)]
    for room, members in enumerate(rooms, start=1):
        for member in members:
            of_user[member].append(room)
    tokens = [f"{user + 1}:{','.join(map(str, joined))}" for user, joined in enumerate(of_user)]
    return Seeded(tokens=tokens, rooms=list(range(1, len(rooms) + 1)))


class CeilingServer(Target):
    """bench/ceiling_server.py: websockets + one Redis PUBLISH per message, no Django."""

    name = "ceiling"

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.redis_url = os.environ.get("REDIS_URL") or args.ceiling_redis
        self.log_path = workdir / "ceiling.log"
        self.memberships: list[list[int]] = []

    def seed(self, users: int, rooms: list[list[int]]) -> Seeded:
        return trusted_tokens(users, rooms)

    def start(self) -> None:
        self.port = free_port()
        command = [
            sys.executable,
            str(PROJECT_DIR / "bench" / "ceiling_server.py"),
            "--port",
            str(self.port),
            "--redis",
            self.redis_url,
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 (our own interpreter, fixed arguments)
                pinned(command, 0), cwd=PROJECT_DIR, stdout=log, stderr=subprocess.STDOUT
            )
        self.pid = self.process.pid
        wait_for_port(self.port, self.process, self.log_path)


class NaiveServer(Target):
    """bench/naive_channels: the Channels tutorial design (a consumer per socket, a group per room) in Daphne."""

    name = "naive"

    def __init__(self, args: argparse.Namespace, run_id: str, workdir: Path) -> None:
        self.redis_url = os.environ.get("REDIS_URL") or args.ceiling_redis
        self.prefix = f"naive-{run_id}"
        self.layer = args.naive_layer
        self.log_path = workdir / "naive.log"
        self.env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "CHAT_TEST_"))}
        self.env.update(
            DJANGO_SETTINGS_MODULE="naive_channels.settings",
            NAIVE_REDIS_URL=self.redis_url,
            NAIVE_LAYER=self.layer,
            NAIVE_PREFIX=self.prefix,
            PYTHONUNBUFFERED="1",
        )

    def seed(self, users: int, rooms: list[list[int]]) -> Seeded:
        return trusted_tokens(users, rooms)

    def start(self) -> None:
        self.port = free_port()
        # Daphne's defaults, as the tutorial runs it.
        self.process = start_daphne(
            self.port, "naive_channels.asgi:application", [], PROJECT_DIR / "bench", self.env, self.log_path
        )
        self.pid = self.process.pid
        wait_for_port(self.port, self.process, self.log_path)

    def cleanup(self) -> None:
        import redis

        client = redis.Redis.from_url(self.redis_url)
        with contextlib.suppress(Exception):
            for key in client.scan_iter(match=f"{self.prefix}*", count=1000):
                client.delete(key)


# --- Clients and the tally ------------------------------------------------------------------------


@dataclass
class Client:
    index: int
    token: str
    rooms: list[int]
    ws: ClientConnection | None = None
    reader: asyncio.Task[None] | None = None
    cursor: int = 0
    connect_seconds: float = 0.0
    hello_at: float = 0.0
    resume_done_at: float = 0.0
    resync: bool = False
    seen: dict[str, float] = field(default_factory=dict)
    event_ids: list[int] = field(default_factory=list)
    duplicates: int = 0
    closed_early: int = 0


class Tally:
    """Messages sent in the current phase and what every client received."""

    def __init__(self) -> None:
        self.sent_at: dict[str, float] = {}
        self.room_of: dict[str, int] = {}
        self.sender_of: dict[str, int] = {}
        self.received: dict[str, int] = {}
        # Messages whose sender's own socket got their message.new: the server posted them.
        self.confirmed: set[str] = set()
        self.refused: dict[str, str] = {}
        self.errors: dict[str, int] = {}
        self.latencies: list[float] = []
        self.delivered = 0
        self.first_send = 0.0
        self.last_arrival = 0.0
        self.phase = ""
        self.connect_failures: dict[str, int] = {}

    def failure(self, reason: str) -> None:
        self.connect_failures[reason] = self.connect_failures.get(reason, 0) + 1

    def reset(self, phase: str) -> None:
        failures = self.connect_failures
        self.__init__()  # type: ignore[misc]
        self.phase = phase
        self.connect_failures = failures

    def on_frame(self, client: Client, raw: str | bytes) -> None:
        now = time.perf_counter()
        frame = json.loads(raw)
        kind = frame.get("type")
        if kind == "message.new":
            event_id = frame["event_id"]
            client.cursor = max(client.cursor, event_id)
            client_id = frame["message"].get("client_id") or ""
            sent = self.sent_at.get(client_id)
            if sent is None:
                return  # another phase's message, or someone else's
            if client_id in client.seen:
                client.duplicates += 1
                return
            client.seen[client_id] = now
            self.received[client_id] = self.received.get(client_id, 0) + 1
            if self.sender_of.get(client_id) == client.index:
                self.confirmed.add(client_id)
            client.event_ids.append(event_id)
            self.latencies.append(now - sent)
            self.delivered += 1
            self.last_arrival = now
        elif kind == "hello":
            client.hello_at = now
            if client.cursor == 0:  # a fresh client takes the server's newest id as its cursor
                client.cursor = int(frame.get("last_event_id") or 0)
        elif kind == "resume.done":
            client.resume_done_at = now
        elif kind == "resync.required":
            client.resync = True
        elif kind == "error":
            code = frame.get("code", "?")
            self.errors[code] = self.errors.get(code, 0) + 1
            client_id = frame.get("client_id")
            if client_id in self.sent_at:
                self.refused[client_id] = code

    def expected(self, members_of: dict[int, int]) -> int:
        return sum(members_of[room] for client_id, room in self.room_of.items() if client_id not in self.refused)


async def read_frames(client: Client, tally: Tally) -> None:
    assert client.ws is not None
    try:
        async for raw in client.ws:
            tally.on_frame(client, raw)
    except websockets.ConnectionClosed:
        pass
    client.closed_early += 1


async def open_client(target: Target, client: Client, tally: Tally, *, cursor: int | None = None) -> bool:
    """Open the client's socket and wait for hello; return whether that worked."""
    started = time.perf_counter()
    client.hello_at = 0.0
    try:
        client.ws = await connect(
            target.ws_url(cursor),
            additional_headers={"Authorization": f"Bearer {client.token}"},
            compression=None,
            ping_interval=None,
            open_timeout=60,
            close_timeout=2,
            max_size=2**20,
            max_queue=None,
        )
    except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.ConnectionClosed) as error:
        status = getattr(getattr(error, "response", None), "status_code", None)
        tally.failure(f"{type(error).__name__}{f' {status}' if status else ''}")
        return False
    client.reader = asyncio.create_task(read_frames(client, tally))
    deadline = time.perf_counter() + 60
    while client.hello_at == 0.0:
        if client.reader.done() or time.perf_counter() > deadline:
            close = client.ws.close_code
            tally.failure(f"closed {close} before hello" if client.reader.done() else "no hello in 60 s")
            return False
        await asyncio.sleep(0.005)
    client.connect_seconds = client.hello_at - started
    return True


async def open_all(
    target: Target,
    clients: Sequence[Client],
    tally: Tally,
    concurrency: int,
    *,
    resume: bool = False,
    retries: int = 0,
) -> tuple[list[float], int]:
    """Open every client's socket, at most `concurrency` handshakes at once; return connect times and failures.

    With `retries`, a client whose handshake fails tries again after a
    jittered backoff (0.5 s, 1 s, 2 s…), as a real client does; its connect
    time then runs from its first attempt, backoff included.
    """
    gate = asyncio.Semaphore(concurrency)
    jitter = random.Random(len(clients))  # noqa: S311 (backoff jitter, not a secret)

    async def one(client: Client) -> bool:
        first = 0.0
        for attempt in range(retries + 1):
            async with gate:
                first = first or time.perf_counter()  # waiting for the gate is the generator's, not the server's
                if await open_client(target, client, tally, cursor=client.cursor if resume else None):
                    client.connect_seconds = client.hello_at - first
                    return True
            if attempt < retries:
                await asyncio.sleep(0.5 * 2**attempt * (0.5 + jitter.random()))
        return False

    outcomes = await asyncio.gather(*(one(client) for client in clients))
    times = [client.connect_seconds for client, ok in zip(clients, outcomes, strict=True) if ok]
    return times, outcomes.count(False)


async def close_all(clients: Sequence[Client]) -> None:
    async def one(client: Client) -> None:
        if client.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.ws.close(), 5)
        if client.reader is not None:
            client.reader.cancel()

    await asyncio.gather(*(one(client) for client in clients))


# --- Sending ------------------------------------------------------------------------------------


async def send_open_loop(
    slots: Sequence[tuple[Client, int]], tally: Tally, *, rate: float, seconds: float, tag: str
) -> tuple[int, float]:
    """Send rate×seconds messages on schedule, taking slots in turn; return (sent, worst lag in s)."""
    total = int(rate * seconds)
    start = time.perf_counter() + 0.05
    tally.first_send = start
    pending: set[asyncio.Task[None]] = set()
    worst_lag = 0.0
    sent = 0
    for number in range(total):
        due = start + number / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        client, room = slots[number % len(slots)]
        if client.ws is None or client.reader is None or client.reader.done():
            continue
        client_id = f"{tag}-{number}"
        now = time.perf_counter()
        worst_lag = max(worst_lag, now - due)
        frame = {
            "type": "message.send",
            "room": room,
            "body": f"load {client_id} sent {time.time():.6f}",
            "client_id": client_id,
        }
        tally.sent_at[client_id] = now
        tally.room_of[client_id] = room
        tally.sender_of[client_id] = client.index
        task = asyncio.create_task(client.ws.send(json.dumps(frame)))
        pending.add(task)
        task.add_done_callback(pending.discard)
        sent += 1
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    return sent, worst_lag


async def drain(tally: Tally, expected: Any, *, idle: float, most: float) -> None:
    """Wait until every expected delivery arrived, or none arrived for `idle` s, or `most` s passed."""
    started = time.perf_counter()
    last_count, last_change = -1, started
    while True:
        now = time.perf_counter()
        if tally.delivered >= expected():
            return
        if tally.delivered != last_count:
            last_count, last_change = tally.delivered, now
        if now - last_change > idle or now - started > most:
            return
        await asyncio.sleep(0.1)


class Progress:
    """A one-line progress report on stderr, once a second."""

    def __init__(self, tally: Tally, label: str) -> None:
        self.tally = tally
        self.label = label
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        started = time.perf_counter()
        while True:
            await asyncio.sleep(1)
            tally = self.tally
            recent = tally.latencies[-2000:]
            sys.stderr.write(
                f"\r  {self.label}: {time.perf_counter() - started:5.0f} s  sent {len(tally.sent_at):7d}  "
                f"delivered {tally.delivered:9d}  p99(last) {percentile(recent, 99) * 1000:8.1f} ms   "
            )
            sys.stderr.flush()

    def __enter__(self) -> Progress:
        self.task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self.task is not None:
            self.task.cancel()
        sys.stderr.write("\n")


# --- Measurement of one phase ----------------------------------------------------------------


class Meter:
    """CPU, memory and the generator's own CPU over a phase."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.wall = time.perf_counter()
        self.cpu = cpu_seconds(pid)
        self.backing = backing_cpu_seconds()
        self.own = time.process_time()

    def read(self) -> dict[str, Any]:
        wall = time.perf_counter() - self.wall
        cpu = cpu_seconds(self.pid) - self.cpu
        return {
            "wall_s": round(wall, 2),
            "server_cpu_s": round(cpu, 2),
            "server_cpu_pct": round(100 * cpu / wall, 1) if wall else 0.0,
            "server_rss_mib": round(rss_bytes(self.pid) / 2**20, 1),
            "backing_cpu_s": round(backing_cpu_since(self.backing), 2),
            "generator_cpu_pct": round(100 * (time.process_time() - self.own) / wall, 1) if wall else 0.0,
        }


def delivery_result(clients: Sequence[Client], tally: Tally, members_of: dict[int, int]) -> dict[str, Any]:
    expected = tally.expected(members_of)
    span = max(tally.last_arrival - tally.first_send, 1e-9)
    out_of_order = sum(count_order(client.event_ids) for client in clients)
    accepted = sum(1 for client_id in tally.room_of if client_id not in tally.refused)
    # Lost: deliveries missing for messages the server did post (their sender saw them).
    lost = sum(members_of[tally.room_of[cid]] - tally.received.get(cid, 0) for cid in tally.confirmed)
    return {
        "sent": len(tally.sent_at),
        "accepted": accepted,
        "refused": len(tally.refused),
        "errors": dict(tally.errors),
        "expected": expected,
        "delivered": tally.delivered,
        "deliveries_per_s": round(tally.delivered / span, 1) if tally.delivered else 0.0,
        "undelivered": max(0, expected - tally.delivered),
        "unconfirmed": accepted - len(tally.confirmed),
        "lost": lost,
        "duplicated": sum(client.duplicates for client in clients),
        "out_of_order": out_of_order,
        **summarize_ms(tally.latencies),
    }


def reset_clients(clients: Iterable[Client]) -> None:
    for client in clients:
        client.seen = {}
        client.event_ids = []
        client.duplicates = 0


# --- Scenarios ------------------------------------------------------------------------------------


@dataclass
class Plan:
    """Users and rooms to seed: users 0..users-1, rooms as lists of user indices."""

    users: int
    rooms: list[list[int]]


def plan_for(args: argparse.Namespace) -> Plan:
    if args.scenario == "idle":
        return Plan(users=args.sockets, rooms=[])
    if args.scenario == "fanout":
        return Plan(users=args.members, rooms=[list(range(args.members))])
    if args.scenario == "rooms":
        count, size = args.room_count, args.members
        return Plan(users=count * size, rooms=[list(range(r * size, (r + 1) * size)) for r in range(count)])
    # storm: rooms of --members storm clients, plus sender users, each a member of some rooms.
    size = args.members
    count = math.ceil(args.sockets / size)
    senders = max(1, math.ceil(args.rate / SENDER_RATE))
    first_sender = args.sockets
    rooms = [[*range(r * size, min((r + 1) * size, args.sockets)), first_sender + r % senders] for r in range(count)]
    return Plan(users=args.sockets + senders, rooms=rooms)


def make_clients(plan: Plan, seeded: Seeded) -> tuple[list[Client], dict[int, int]]:
    rooms_of: list[list[int]] = [[] for _ in range(plan.users)]
    members_of: dict[int, int] = {}
    for members, room_id in zip(plan.rooms, seeded.rooms, strict=True):
        members_of[room_id] = len(members)
        for member in members:
            rooms_of[member].append(room_id)
    clients = [Client(index=i, token=seeded.tokens[i], rooms=rooms_of[i]) for i in range(plan.users)]
    return clients, members_of


async def run_scenario(
    args: argparse.Namespace, target: Target, plan: Plan, seeded: Seeded, after_connect: Any = None
) -> list[dict[str, Any]]:
    clients, members_of = make_clients(plan, seeded)
    tally = Tally()
    rows: list[dict[str, Any]] = []
    base = {"target": target.name, "scenario": args.scenario}
    # A few sockets first, so lazy imports and pools are not counted per socket.
    warm = min(WARM_SOCKETS, len(clients) // 10)
    warm_times, warm_failures = await open_all(target, clients[:warm], tally, args.connect_concurrency)
    await asyncio.sleep(1)
    rss_before = rss_bytes(target.pid)
    meter = Meter(target.pid)
    with Progress(tally, f"{target.name} connect {len(clients)}"):
        times, failures = await open_all(target, clients[warm:], tally, args.connect_concurrency)
    times, failures = warm_times + times, warm_failures + failures
    connect = {
        "sockets": len(clients),
        "connect_failures": failures,
        "connect_p50_ms": round(percentile(times, 50) * 1000, 1),
        "connect_p99_ms": round(percentile(times, 99) * 1000, 1),
        "connect_max_ms": round(max(times, default=0.0) * 1000, 1),
        "connect_wall_s": meter.read()["wall_s"],
        "connect_failure_reasons": dict(tally.connect_failures),
    }
    if after_connect is not None:
        after_connect()
    try:
        if args.scenario == "idle":
            await asyncio.sleep(args.seconds)
            usage = meter.read()
            still_open = sum(1 for client in clients if client.reader is not None and not client.reader.done())
            grown = rss_bytes(target.pid) - rss_before
            rows.append(
                {
                    **base,
                    **connect,
                    **usage,
                    "still_open": still_open,
                    "rss_per_socket_kib": round(grown / max(1, len(times) - warm) / 1024, 1),
                }
            )
        elif args.scenario in ("fanout", "rooms"):
            for rate in args.rates:
                rows.append({**base, **connect, **await run_rate(args, target, clients, tally, members_of, rate)})
                await asyncio.sleep(1)
        else:
            rows.append({**base, **connect, **await run_storm(args, target, clients, tally, members_of)})
    finally:
        await close_all(clients)
    return rows


def sender_slots(args: argparse.Namespace, clients: Sequence[Client], rate: float) -> list[tuple[Client, int]]:
    """Return (client, room) pairs to send from in turn, each sending at most SENDER_RATE a second."""
    if args.scenario == "fanout":
        count = min(len(clients), max(1, math.ceil(rate / SENDER_RATE)))
        return [(client, client.rooms[0]) for client in clients[:count]]
    # rooms: every member in turn, interleaved across rooms so each room's senders take turns.
    by_room: dict[int, list[Client]] = {}
    for client in clients:
        for room in client.rooms:
            by_room.setdefault(room, []).append(client)
    slots = []
    for position in range(max(len(members) for members in by_room.values())):
        for room, members in by_room.items():
            if position < len(members):
                slots.append((members[position], room))
    if rate / len(slots) > SENDER_RATE:
        raise SystemExit(f"{rate} msg/s over {len(slots)} members is above {SENDER_RATE}/s per socket")
    return slots


async def run_rate(
    args: argparse.Namespace,
    target: Target,
    clients: Sequence[Client],
    tally: Tally,
    members_of: dict[int, int],
    rate: float,
) -> dict[str, Any]:
    tag = f"{uuid.uuid4().hex[:6]}-{int(rate)}"
    tally.reset(tag)
    reset_clients(clients)
    slots = sender_slots(args, clients, rate)
    meter = Meter(target.pid)
    with Progress(tally, f"{target.name} {args.scenario} {rate:g} msg/s"):
        sent, lag = await send_open_loop(slots, tally, rate=rate, seconds=args.seconds, tag=tag)
        send_wall = time.perf_counter() - tally.first_send
        await drain(tally, lambda: tally.expected(members_of), idle=args.drain_idle, most=args.drain_max)
    result = {**delivery_result(clients, tally, members_of), **meter.read()}
    return {
        "rate": rate,
        "senders": len(slots),
        "sent_per_s": round(sent / send_wall, 1),
        "send_lag_max_ms": round(lag * 1000, 1),
        **result,
        "cpu_us_per_delivery": round(result["server_cpu_s"] * 1e6 / max(1, result["delivered"]), 1),
    }


async def run_storm(
    args: argparse.Namespace,
    target: Target,
    clients: Sequence[Client],
    tally: Tally,
    members_of: dict[int, int],
) -> dict[str, Any]:
    storm = list(clients[: args.sockets])
    senders = list(clients[args.sockets :])
    tag = uuid.uuid4().hex[:6]
    tally.reset(tag)
    reset_clients(clients)
    # Room after room, each from its sender.
    slots = sorted(((sender, room) for sender in senders for room in sender.rooms), key=lambda slot: slot[1])
    lead = 3.0
    total_seconds = lead + args.away + args.seconds
    meter = Meter(target.pid)
    with Progress(tally, f"{target.name} storm {len(storm)}"):
        sending = asyncio.create_task(send_open_loop(slots, tally, rate=args.rate, seconds=total_seconds, tag=tag))
        await asyncio.sleep(lead)
        for client in storm:
            if client.ws is not None:
                client.ws.transport.abort()
        await asyncio.sleep(args.away)
        for client in storm:
            client.resume_done_at = 0.0
            client.resync = False
        wave = time.perf_counter()
        times, failures = await open_all(
            target, storm, tally, args.storm_concurrency, resume=True, retries=args.storm_retries
        )
        reconnected = time.perf_counter() - wave
        sent, lag = await sending
        await drain(tally, lambda: tally.expected(members_of), idle=args.drain_idle, most=args.drain_max)
    # Caught up: resume.done, and every message accepted before the wave began has arrived.
    before_wave = {cid for cid, at in tally.sent_at.items() if at < wave and cid not in tally.refused}
    caught_up: list[float] = []
    behind = 0
    for client in storm:
        wanted = [cid for cid in before_wave if tally.room_of[cid] in client.rooms]
        arrivals = [client.seen.get(cid) for cid in wanted]
        if client.resume_done_at == 0.0 or any(arrival is None for arrival in arrivals):
            behind += 1
            continue
        last = max([client.resume_done_at, *(a for a in arrivals if a is not None)])
        caught_up.append(max(0.0, last - wave))
    return {
        "rate": args.rate,
        "away_s": args.away,
        "storm_clients": len(storm),
        "reconnect_failures": failures,
        "failed_attempts": sum(tally.connect_failures.values()),
        "failure_reasons": dict(tally.connect_failures),
        "reconnect_wall_s": round(reconnected, 2),
        "reconnect_p99_ms": round(percentile(times, 99) * 1000, 1),
        "resync_required": sum(1 for client in storm if client.resync),
        "caught_up_s_p50": round(percentile(caught_up, 50), 2),
        "caught_up_s_all": round(max(caught_up, default=0.0), 2) if not behind else None,
        "not_caught_up": behind,
        "sent_per_s": round(sent / total_seconds, 1),
        "send_lag_max_ms": round(lag * 1000, 1),
        **delivery_result(clients, tally, members_of),
        **meter.read(),
    }


# --- Report ----------------------------------------------------------------------------------------

COLUMNS = {
    "idle": [
        ("target", "target"),
        ("sockets", "sockets"),
        ("connect_failures", "fail"),
        ("connect_p50_ms", "conn p50 ms"),
        ("connect_p99_ms", "conn p99 ms"),
        ("connect_max_ms", "conn max ms"),
        ("still_open", "open"),
        ("server_rss_mib", "RSS MiB"),
        ("rss_per_socket_kib", "KiB/socket"),
    ],
    "rate": [
        ("target", "target"),
        ("rate", "rate"),
        ("sent_per_s", "sent/s"),
        ("deliveries_per_s", "deliv/s"),
        ("p50_ms", "p50 ms"),
        ("p95_ms", "p95 ms"),
        ("p99_ms", "p99 ms"),
        ("max_ms", "max ms"),
        ("undelivered", "undeliv"),
        ("unconfirmed", "unposted"),
        ("lost", "lost"),
        ("duplicated", "dup"),
        ("out_of_order", "ooo"),
        ("refused", "refused"),
        ("server_cpu_pct", "CPU %"),
        ("cpu_us_per_delivery", "µs CPU/deliv"),
        ("backing_cpu_s", "db+redis CPU s"),
        ("generator_cpu_pct", "gen CPU %"),
        ("server_rss_mib", "RSS MiB"),
    ],
    "storm": [
        ("target", "target"),
        ("storm_clients", "clients"),
        ("reconnect_failures", "fail"),
        ("failed_attempts", "retried"),
        ("reconnect_p99_ms", "reconn p99 ms"),
        ("caught_up_s_p50", "caught up p50 s"),
        ("caught_up_s_all", "all caught up s"),
        ("not_caught_up", "behind"),
        ("resync_required", "resync"),
        ("undelivered", "undeliv"),
        ("lost", "lost"),
        ("duplicated", "dup"),
        ("out_of_order", "ooo"),
        ("p99_ms", "p99 ms"),
        ("server_cpu_pct", "CPU %"),
    ],
}


def table(rows: Sequence[dict[str, Any]], scenario: str) -> str:
    """Return the rows as a text table (rate by rate, targets side by side), then the ratio lines."""
    columns = COLUMNS["idle" if scenario == "idle" else "storm" if scenario == "storm" else "rate"]
    order = list(TARGETS["all"])
    rows = sorted(rows, key=lambda row: (row.get("rate") or 0, order.index(row["target"])))
    header = [title for _, title in columns]
    body = [
        [row["target"], *(["n/a"] * (len(columns) - 1))]
        if "error" in row
        else ["" if row.get(key) is None else str(row.get(key, "")) for key, _ in columns]
        for row in rows
    ]
    widths = [max(len(cell) for cell in column) for column in zip(header, *body, strict=True)]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)) for line in [header, *body]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.extend(f"{row['target']}: n/a, {row['error']}" for row in rows if "error" in row)
    found = ratios(rows, scenario)
    if found:
        lines.append("")
        lines.extend(ratio_line(entry) for entry in found)
    return "\n".join(lines)


# Per scenario, the figures compared as ratios (key in a result row, label); all are "lower is better"
# except deliveries per second.
RATIO_FIGURES: dict[str, list[tuple[str, str]]] = {
    "rate": [
        ("p50_ms", "p50"),
        ("p99_ms", "p99"),
        ("cpu_us_per_delivery", "CPU µs/delivery"),
        ("deliveries_per_s", "deliveries/s"),
    ],
    "idle": [("connect_p99_ms", "connect p99"), ("rss_per_socket_kib", "KiB/socket")],
    "storm": [
        ("caught_up_s_all", "all caught up s"),
        ("reconnect_p99_ms", "reconnect p99 ms"),
        ("server_cpu_s", "CPU s"),
    ],
}
# ours against each reference, and the tutorial design against the ceiling.
RATIO_PAIRS = (("ours", "ceiling"), ("ours", "naive"), ("naive", "ceiling"))


def ratios(rows: Sequence[dict[str, Any]], scenario: str) -> list[dict[str, Any]]:
    """Return, per rate (fanout, rooms) or per run (idle, storm), each figure as [a, b, a / b] for every pair that ran.

    A figure either side lacks (a target that failed, or a storm client that never caught
    up) gives None, shown as n/a: a ratio is only made of two measured figures.
    """
    kind = "idle" if scenario == "idle" else "storm" if scenario == "storm" else "rate"
    by_target: dict[str, dict[Any, dict[str, Any]]] = {}
    for row in rows:
        if "error" not in row:
            by_target.setdefault(row["target"], {})[row.get("rate") if kind == "rate" else None] = row
    out = []
    for first, second in RATIO_PAIRS:
        a_rows, b_rows = by_target.get(first, {}), by_target.get(second, {})
        for key in sorted(set(a_rows) & set(b_rows), key=lambda key: key or 0):
            a, b = a_rows[key], b_rows[key]
            entry: dict[str, Any] = {"pair": f"{first}/{second}"}
            if kind == "rate":
                entry["rate"] = key
            for figure, _ in RATIO_FIGURES[kind]:
                x, y = a.get(figure), b.get(figure)
                entry[figure] = [x, y, None if x is None or y is None else round(x / max(y, 0.01), 2)]
            out.append(entry)
    return out


def ratio_line(entry: dict[str, Any]) -> str:
    kind = "rate" if "rate" in entry else "storm" if "caught_up_s_all" in entry else "idle"
    parts = []
    for figure, label in RATIO_FIGURES[kind]:
        x, y, ratio = entry[figure]
        shown = "n/a" if ratio is None else f"×{ratio:g}"
        parts.append(f"{label} {x if x is not None else 'n/a'} vs {y if y is not None else 'n/a'} ({shown})")
    where = f"rate {entry['rate']:g}: " if kind == "rate" else ""
    return f"{where}{entry['pair']:<13}  " + "  ".join(parts)


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "websockets": websockets.__version__,
        "cpus": os.cpu_count(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "kernel": platform.release(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    return info


# --- Main ----------------------------------------------------------------------------------------------

# Run in this order, so a table reads ours, then the Channels tutorial design, then the bare ceiling.
TARGETS: dict[str, tuple[str, ...]] = {
    "all": ("ours", "naive", "ceiling"),
    "both": ("ours", "ceiling"),
    "ours": ("ours",),
    "naive": ("naive",),
    "ceiling": ("ceiling",),
}

DEFAULTS: dict[str, dict[str, Any]] = {
    "idle": {"sockets": 1000, "seconds": 5.0},
    "fanout": {"members": 200, "rates": "20,50,100", "seconds": 10.0},
    "rooms": {"members": 5, "rates": "500", "seconds": 10.0},
    "storm": {"sockets": 500, "members": 5, "rate": 20.0, "seconds": 5.0},
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=sorted(DEFAULTS))
    parser.add_argument(
        "--target", choices=tuple(TARGETS), default="all", help="servers to run in turn (both = ours and ceiling)"
    )
    parser.add_argument(
        "--naive-layer",
        choices=("core", "pubsub"),
        default="core",
        help="the naive reference's channel layer: RedisChannelLayer (the tutorial's) or RedisPubSubChannelLayer",
    )
    parser.add_argument("--sockets", type=int, help="idle: sockets; storm: clients that drop (default 1000 / 500)")
    parser.add_argument("--members", type=int, help="members per room (fanout 200, rooms and storm 5)")
    parser.add_argument("--room-count", type=int, default=100, help="rooms: how many rooms")
    parser.add_argument("--rates", help="fanout/rooms: comma-separated msg/s, run in turn (default 20,50,100 / 500)")
    parser.add_argument("--rate", type=float, help="storm: msg/s sent all along (default 20)")
    parser.add_argument("--seconds", type=float, help="idle: hold time; fanout/rooms: send time per rate")
    parser.add_argument("--away", type=float, default=2.0, help="storm: seconds the clients stay away")
    parser.add_argument("--connect-concurrency", type=int, default=100, help="handshakes in flight at most")
    parser.add_argument("--storm-concurrency", type=int, default=500, help="storm: reconnections in flight at most")
    parser.add_argument("--storm-retries", type=int, default=5, help="storm: handshake retries per client, backing off")
    parser.add_argument("--drain-idle", type=float, default=3.0, help="stop draining after this long with no arrival")
    parser.add_argument("--drain-max", type=float, default=15.0, help="drain at most this long after sending")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up on the whole run after this long")
    parser.add_argument("--db-name", default="chatbench", help="database on DATABASE_URL's server (made if missing)")
    parser.add_argument(
        "--ceiling-redis",
        default="redis://127.0.0.1:6379/0",
        help="the Redis of the ceiling and the naive reference without REDIS_URL",
    )
    parser.add_argument("--profile", type=float, default=0.0, help="record py-spy for this many s of our server's run")
    parser.add_argument("--profile-format", choices=("flamegraph", "raw"), default="flamegraph")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    for key, value in DEFAULTS[args.scenario].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.rates = [float(rate) for rate in str(args.rates or "0").split(",")]
    args.rate = float(args.rate or 20.0)
    args.members = int(args.members or 5)
    args.sockets = int(args.sockets or 0)
    return args


def raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def start_profile(args: argparse.Namespace, target: Target) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not args.profile or target.name != "ours" or not Path(spy).exists():
        return None
    raw = args.profile_format == "raw"
    out = PROJECT_DIR / "bench" / "results" / f"profile-{args.scenario}.{'txt' if raw else 'svg'}"
    command = [spy, "record", "-o", str(out), "-d", str(int(args.profile)), "-p", str(target.pid), "--nonblocking"]
    return subprocess.Popen(  # noqa: S603 (a fixed tool and arguments)
        [*command, "--threads", "--idle", "--format", args.profile_format],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def run_target(args: argparse.Namespace, target: Target, plan: Plan) -> list[dict[str, Any]]:
    print(f"== {target.name}: seeding {plan.users} users, {len(plan.rooms)} rooms", file=sys.stderr)
    started = time.perf_counter()
    seeded = await asyncio.to_thread(target.seed, plan.users, plan.rooms)
    print(f"   seeded in {time.perf_counter() - started:.1f} s; starting the server", file=sys.stderr)
    profile: list[subprocess.Popen[bytes] | None] = [None]

    def profile_now() -> None:
        profile[0] = start_profile(args, target)

    try:
        await asyncio.to_thread(target.start)
        return await run_scenario(args, target, plan, seeded, profile_now)
    finally:
        if profile[0] is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                profile[0].wait(args.profile + 30)
        target.stop()


async def run_named_target(
    args: argparse.Namespace, name: str, run_id: str, workdir: Path, plan: Plan, meta: dict[str, Any]
) -> list[dict[str, Any]]:
    if name == "ours":
        ours = OurServer(args, run_id, workdir)
        meta["ours"] = {"database": ours.database, "redis": ours.redis, "log": str(ours.log_path)}
        print(f"== ours: preparing the {ours.database} database", file=sys.stderr)
        await asyncio.to_thread(ours.prepare_database)
        try:
            return await run_target(args, ours, plan)
        finally:
            ours.cleanup()
    if name == "naive":
        naive = NaiveServer(args, run_id, workdir)
        meta["naive"] = {"layer": naive.layer, "redis": naive.redis_url, "log": str(naive.log_path)}
        try:
            rows = await run_target(args, naive, plan)
        finally:
            naive.cleanup()
        return [{**row, "naive_layer": naive.layer} for row in rows]
    ceiling = CeilingServer(args, workdir)
    meta["ceiling"] = {"redis": ceiling.redis_url, "log": str(ceiling.log_path)}
    return await run_target(args, ceiling, plan)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    workdir = Path(tempfile.mkdtemp(prefix=f"loadtest-{run_id}-"))
    plan = plan_for(args)
    rows: list[dict[str, Any]] = []
    meta: dict[str, Any] = {"run": run_id, "args": {k: str(v) for k, v in vars(args).items()}, "machine": machine()}
    for name in TARGETS[args.target]:
        # One target failing (a server that would not start, a scenario it cannot do)
        # leaves the others' figures: its row says n/a and why.
        try:
            rows += await run_named_target(args, name, run_id, workdir, plan, meta)
        except Exception as error:
            reason = f"{type(error).__name__}: {error}"[:500]
            print(f"== {name} failed: {reason}", file=sys.stderr)
            rows.append({"target": name, "scenario": args.scenario, "error": reason})
    meta["machine"]["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
    return {"meta": meta, "results": rows, "ratios": ratios(rows, args.scenario)}


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    raise_file_limit()
    if (os.cpu_count() or 1) > 1 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {1})  # the servers run on CPU 0
    report = asyncio.run(asyncio.wait_for(main_async(args), args.timeout))
    print()
    print(f"{args.scenario}  (load average before {report['meta']['machine']['load_average']})")
    print(table(report["results"], args.scenario))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
