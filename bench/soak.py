"""Soak benchmark: hundreds of sockets, mixed traffic, for tens of minutes.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chat REDIS_URL=redis://127.0.0.1:6379/0 \\
    .venv/bin/python bench/soak.py --minutes 30 --sockets 300 --out bench/results/soak.json

Not a CI test: a benchmark that says whether the server stays correct and
flat over a long run. It reuses bench/loadtest.py (server start-up in
production mode, seeding through the services, the client, the delivery
tally) and adds:

- `--servers` Daphne processes (default 2) sharing one database
  (`--db-name`, default `chatbench_soak`) and the pub/sub channel layer on
  REDIS_URL; client i uses server i mod --servers, for WebSocket and REST.
- Mixed traffic, open loop at `--rate` actions/s (default 30): socket
  messages into small rooms (`--small-size` members, every user in one) and
  into `--big-rooms` big rooms (every user in one), REST posts, REST edits
  of the sender's own earlier messages (each message edited at most once),
  REST reactions, read markers and typing over the socket.
- Churn: every `--churn-every` s, `--churn-fraction` of the clients stop
  sending, then half close cleanly and half drop the TCP connection; after
  2–8 s each reconnects with `?last_event_id=<highest seen>` and must get
  everything it missed. A socket the server closes by itself is reopened
  the same way and counted as `drops`.
- Every `--interval` s a row: actions and deliveries in the interval,
  latency percentiles of that interval's deliveries (send → message.new),
  lost / duplicated / out-of-order so far, RSS and CPU of each server
  process, PostgreSQL connections to the database (pg_stat_activity), Redis
  used memory and pub/sub channels of this run.

Counting. A message is **lost** when its sender saw it posted (its own
message.new) but some member of the room still lacks it `--grace` s after
it was sent (per row), or after the final drain (totals). Edits count the
same way through their message.updated frames (the edit text is unique).
**dup**: a message.new or a message.updated event delivered twice to one
client, across its reconnections. **ooo**: an event with a lower event_id than one that client
already had, across reconnections (a resume must replay strictly after the
cursor). **unposted**: sends the server never confirmed; expected to be 0,
because a client stops sending 1 s before it disconnects.

Latency is send → receive for every delivery, replayed ones included: a
message replayed to a client on resume carries the time that client was
away, so rows with a churn wave have a higher p99 and max than rows without.

Memory: `rss_slope_mib_per_h` is the least-squares slope of each server's
RSS over the rows after `--warmup` minutes. Every run is bounded: --minutes
of traffic, then a drain of at most --drain-max s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

# bench/ is not a package: loadtest is imported from this directory.
from loadtest import (
    HOST,
    Client,
    OurServer,
    Plan,
    Tally,
    count_order,
    cpu_seconds,
    drain,
    machine,
    make_clients,
    open_client,
    raise_file_limit,
    rss_bytes,
    summarize_ms,
)

EMOJI = ("👍", "🎉", "❤️", "😂", "👀")
# What one action of the open-loop schedule is, by weight.
MIX = {
    "small": 0.55,
    "big": 0.07,
    "rest_post": 0.06,
    "edit": 0.06,
    "reaction": 0.07,
    "read": 0.11,
    "typing": 0.08,
}
MiB = 2**20


# --- The tally, extended to edits and every event's order ------------------------------------------


class SoakTally(Tally):
    """loadtest's Tally, plus edits, reactions and the order of every event a client gets."""

    def __init__(self) -> None:
        super().__init__()
        self.edit_sent: dict[str, float] = {}
        self.edit_room: dict[str, int] = {}
        self.edit_seen: dict[str, int] = {}
        self.edit_latencies: list[float] = []
        # Latencies of message.new split by how the message was sent (they also stay in self.latencies).
        self.rest_ids: set[str] = set()
        self.ws_latencies: list[float] = []
        self.rest_latencies: list[float] = []
        self.seen_edits: dict[int, set[str]] = {}
        self.seen_updates: dict[int, set[int]] = {}
        self.update_deliveries = 0
        self.kinds: Counter[str] = Counter()
        # Messages each client posted (id, room), for its edits; recent ids per room, for reactions and reads.
        self.own: dict[int, deque[tuple[int, int]]] = {}
        self.recent: dict[int, deque[int]] = {}

    def on_frame(self, client: Client, raw: str | bytes) -> None:
        frame = json.loads(raw)
        kind = frame.get("type", "?")
        self.kinds[kind] += 1
        if kind == "message.new":
            delivered = self.delivered
            super().on_frame(client, raw)
            message = frame["message"]
            client_id = message.get("client_id") or ""
            if self.delivered > delivered:
                (self.rest_latencies if client_id in self.rest_ids else self.ws_latencies).append(self.latencies[-1])
            if self.sender_of.get(client_id) == client.index:
                self.own.setdefault(client.index, deque(maxlen=50)).append((message["id"], frame["room"]))
                self.recent.setdefault(frame["room"], deque(maxlen=20)).append(message["id"])
            return
        if kind != "message.updated":
            super().on_frame(client, raw)
            return
        now = time.perf_counter()
        event_id = int(frame["event_id"])
        client.cursor = max(client.cursor, event_id)
        client.event_ids.append(event_id)
        updates = self.seen_updates.setdefault(client.index, set())
        if event_id in updates:
            client.duplicates += 1
            return
        updates.add(event_id)
        self.update_deliveries += 1
        token = frame["message"].get("body", "").rpartition(" ")[2]
        sent = self.edit_sent.get(token)
        seen = self.seen_edits.setdefault(client.index, set())
        # Not an edit of ours, or a later reaction on an edited message (it carries the edited body too).
        if sent is None or token in seen:
            return
        seen.add(token)
        self.edit_seen[token] = self.edit_seen.get(token, 0) + 1
        self.edit_latencies.append(now - sent)
        self.last_arrival = now

    def lost(self, members_of: dict[int, int], before: float) -> tuple[int, int]:
        """Return (deliveries missing, of which edits) for what the server posted before `before`."""
        missing = sum(
            members_of[self.room_of[cid]] - self.received.get(cid, 0)
            for cid in self.confirmed
            if self.sent_at[cid] < before
        )
        edits = sum(
            members_of[self.edit_room[token]] - self.edit_seen.get(token, 0)
            for token, at in self.edit_sent.items()
            if at < before
        )
        return missing + edits, edits

    def unposted(self, before: float) -> int:
        return sum(
            1
            for cid, at in self.sent_at.items()
            if at < before and cid not in self.confirmed and cid not in self.refused
        )


# --- Servers, REST and the database/Redis probes ---------------------------------------------------------


def start_servers(args: argparse.Namespace, run_id: str, workdir: Path) -> list[OurServer]:
    """Make --servers OurServer targets that share one database, channel prefix and signing key."""
    servers: list[OurServer] = []
    for number in range(args.servers):
        server = OurServer(args, run_id, workdir)
        # Adapter: loadtest gives each OurServer its own SECRET_KEY and the same log file.
        server.log_path = workdir / f"daphne-{number}.log"
        if servers:
            server.env["SECRET_KEY"] = servers[0].env["SECRET_KEY"]
        server.env["CHANNEL_LAYER"] = "pubsub"
        servers.append(server)
    return servers


def rest(server: OurServer, token: str, method: str, path: str, body: dict[str, Any] | None) -> int:
    request = urllib.request.Request(
        f"http://{HOST}:{server.port}/api/v1/{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


class Probes:
    """PostgreSQL connections to the bench database, and Redis memory and this run's channels."""

    def __init__(self, servers: Sequence[OurServer], run_id: str) -> None:
        self.db_name = servers[0].db_name
        self.maintenance_url = getattr(servers[0], "maintenance_url", "")
        self.prefix = f"bench-{run_id}"
        self.redis_url = os.environ.get("REDIS_URL", "")

    def read(self) -> dict[str, Any]:
        out: dict[str, Any] = {"db_connections": None, "redis_used_mib": None, "redis_channels": None}
        if self.db_name:
            import psycopg

            with contextlib.suppress(Exception), psycopg.connect(self.maintenance_url, connect_timeout=5) as db:
                row = db.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [self.db_name]).fetchone()
                out["db_connections"] = int(row[0]) if row else None
        if self.redis_url:
            import redis

            with contextlib.suppress(Exception):
                client = redis.Redis.from_url(self.redis_url, socket_timeout=5)
                out["redis_used_mib"] = round(int(client.info("memory")["used_memory"]) / MiB, 1)
                out["redis_channels"] = len(client.pubsub_channels(f"{self.prefix}*"))
                client.close()
        return out


# --- The soak itself ------------------------------------------------------------------------------------------


@dataclass
class Soak:
    args: argparse.Namespace
    servers: list[OurServer]
    clients: list[Client]
    members_of: dict[int, int]
    small_rooms: list[int]
    big_rooms: list[int]
    tally: SoakTally = field(default_factory=SoakTally)
    away: set[int] = field(default_factory=set)
    actions: Counter[str] = field(default_factory=Counter)
    rest_failures: Counter[str] = field(default_factory=Counter)
    churned: int = 0
    drops: int = 0
    reconnect_failures: int = 0
    resyncs: int = 0
    stopping: bool = False
    pending: set[asyncio.Task[None]] = field(default_factory=set)
    members: dict[int, list[Client]] = field(default_factory=dict)
    rng: random.Random = field(default_factory=lambda: random.Random(8))  # noqa: S311 (traffic mix, not a secret)

    def __post_init__(self) -> None:
        for client in self.clients:
            for room in client.rooms:
                self.members.setdefault(room, []).append(client)

    def server_of(self, client: Client) -> OurServer:
        return self.servers[client.index % len(self.servers)]

    def usable(self, client: Client) -> bool:
        return (
            client.index not in self.away
            and client.ws is not None
            and client.reader is not None
            and not client.reader.done()
        )

    def pick(self, room: int) -> Client | None:
        candidates = [client for client in self.members[room] if self.usable(client)]
        return self.rng.choice(candidates) if candidates else None

    def spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def ws_send(self, client: Client, frame: dict[str, Any]) -> None:
        assert client.ws is not None
        try:
            await client.ws.send(json.dumps(frame))
        except Exception:  # a closed socket: the message was never sent
            if "client_id" in frame:
                self.tally.refused[frame["client_id"]] = "send_failed"

    def track(self, client: Client, room: int, client_id: str) -> None:
        self.tally.sent_at[client_id] = time.perf_counter()
        self.tally.room_of[client_id] = room
        self.tally.sender_of[client_id] = client.index

    async def rest_call(self, kind: str, client: Client, method: str, path: str, body: dict[str, Any]) -> int:
        status = await asyncio.to_thread(rest, self.server_of(client), client.token, method, path, body)
        if status not in (200, 201, 204):
            self.rest_failures[f"{kind} {status}"] += 1
        return status

    async def rest_post(self, client: Client, room: int, client_id: str) -> None:
        self.track(client, room, client_id)
        self.tally.rest_ids.add(client_id)
        body = {"body": f"soak rest {client_id}", "client_id": client_id}
        status = await self.rest_call("post", client, "POST", f"rooms/{room}/messages/", body)
        if status not in (200, 201):
            self.tally.refused[client_id] = f"http {status}"

    async def edit(self, client: Client, message_id: int, room: int, token: str) -> None:
        sent = time.perf_counter()
        # Registered before the request: the message.updated frame may beat the HTTP answer.
        self.tally.edit_sent[token] = sent
        self.tally.edit_room[token] = room
        status = await self.rest_call("edit", client, "PATCH", f"messages/{message_id}/", {"body": f"edited {token}"})
        if status != 200:
            del self.tally.edit_sent[token]

    def act(self, number: int, tag: str) -> None:
        """Start one action of the mix; skip it when no usable client fits."""
        kind = self.rng.choices(list(MIX), weights=list(MIX.values()))[0]
        if kind in ("small", "big", "rest_post"):
            room = self.rng.choice(self.big_rooms if kind == "big" else self.small_rooms)
            client = self.pick(room)
            if client is None:
                return
            client_id = f"{tag}-{number}"
            if kind == "rest_post":
                self.spawn(self.rest_post(client, room, client_id))
            else:
                self.track(client, room, client_id)
                frame = {"type": "message.send", "room": room, "body": f"soak {client_id}", "client_id": client_id}
                self.spawn(self.ws_send(client, frame))
        elif kind == "edit":
            authors = [c for c in self.clients if self.tally.own.get(c.index) and self.usable(c)]
            if not authors:
                return
            client = self.rng.choice(authors)
            message_id, room = self.tally.own[client.index].popleft()  # each message is edited once at most
            self.spawn(self.edit(client, message_id, room, f"e{tag}x{number}"))
        else:
            room = self.rng.choice(self.small_rooms + self.big_rooms)
            client = self.pick(room)
            recent = self.tally.recent.get(room)
            if client is None or (kind != "typing" and not recent):
                return
            if kind == "typing":
                self.spawn(self.ws_send(client, {"type": "typing", "room": room}))
            elif kind == "read":
                assert recent is not None
                self.spawn(self.ws_send(client, {"type": "read", "room": room, "message_id": recent[-1]}))
            else:
                assert recent is not None
                path = f"messages/{self.rng.choice(recent)}/reactions/"
                self.spawn(self.rest_call("reaction", client, "POST", path, {"emoji": self.rng.choice(EMOJI)}))
        self.actions[kind] += 1

    async def send_loop(self, seconds: float) -> None:
        """Open loop: action n is due at start + n/rate, whatever the answers."""
        tag = uuid.uuid4().hex[:6]
        start = time.perf_counter()
        number = 0
        while True:
            due = start + number / self.args.rate
            if due - start >= seconds:
                return
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            self.act(number, tag)
            number += 1

    async def reconnect(self, client: Client) -> bool:
        server = self.server_of(client)
        for attempt in range(6):
            # A client that has seen nothing yet connects fresh; `?last_event_id=0` would replay all history.
            if await open_client(server, client, self.tally, cursor=client.cursor or None):
                return True
            await asyncio.sleep(0.5 * 2**attempt)
        return False

    async def churn_one(self, client: Client) -> None:
        self.away.add(client.index)
        try:
            await asyncio.sleep(1.0)  # sends already scheduled reach the server first
            if client.ws is not None:
                if client.index % 2:
                    client.ws.transport.abort()
                else:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(client.ws.close(), 5)
            if client.reader is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.reader, 5)
            await asyncio.sleep(self.rng.uniform(2.0, 8.0))
            client.resync = False
            if not await self.reconnect(client):
                self.reconnect_failures += 1
            self.resyncs += int(client.resync)
            self.churned += 1
        finally:
            self.away.discard(client.index)

    async def churn_loop(self) -> None:
        """Every --churn-every s a wave of clients leaves and resumes; server-closed sockets are reopened."""
        next_wave = time.perf_counter() + self.args.churn_every
        while not self.stopping:
            await asyncio.sleep(1.0)
            for client in self.clients:
                if client.index not in self.away and client.reader is not None and client.reader.done():
                    self.drops += 1
                    self.away.add(client.index)
                    self.spawn(self._reopen(client))
            if time.perf_counter() >= next_wave and not self.stopping:
                next_wave += self.args.churn_every
                present = [client for client in self.clients if client.index not in self.away]
                count = max(1, round(len(self.clients) * self.args.churn_fraction))
                for client in self.rng.sample(present, min(count, len(present))):
                    self.spawn(self.churn_one(client))

    async def _reopen(self, client: Client) -> None:
        try:
            if not await self.reconnect(client):
                self.reconnect_failures += 1
        finally:
            self.away.discard(client.index)


class Recorder:
    """One row per interval: traffic, latency, correctness so far, and resource use."""

    def __init__(self, soak: Soak, probes: Probes) -> None:
        self.soak = soak
        self.probes = probes
        self.start = time.perf_counter()
        self.rows: list[dict[str, Any]] = []
        self.last_wall = self.start
        self.last_cpu = [cpu_seconds(server.pid) for server in soak.servers]
        self.last_own = time.process_time()
        self.last_latency = 0
        self.last_edit_latency = 0
        self.last_ws = 0
        self.last_rest = 0
        self.last_delivered = 0
        self.last_updates = 0
        self.last_actions: Counter[str] = Counter()
        self.first_rss: list[float] = []

    async def sample(self, *, final: bool = False) -> dict[str, Any]:
        soak, tally = self.soak, self.soak.tally
        now = time.perf_counter()
        wall = now - self.last_wall
        cpu = [cpu_seconds(server.pid) for server in soak.servers]
        rss = [round(rss_bytes(server.pid) / MiB, 1) for server in soak.servers]
        if not self.first_rss:
            self.first_rss = rss
        own = time.process_time()
        latencies = tally.latencies[self.last_latency :] + tally.edit_latencies[self.last_edit_latency :]
        before = now if final else now - soak.args.grace
        lost, lost_edits = tally.lost(soak.members_of, before)
        actions = soak.actions - self.last_actions
        probes = await asyncio.to_thread(self.probes.read)
        row = {
            "elapsed_s": round(now - self.start, 1),
            "actions": sum(actions.values()),
            "messages_sent": actions["small"] + actions["big"] + actions["rest_post"],
            "edits": actions["edit"],
            "deliveries": tally.delivered - self.last_delivered,
            "update_deliveries": tally.update_deliveries - self.last_updates,
            **summarize_ms(latencies),
            "ws_p99_ms": summarize_ms(tally.ws_latencies[self.last_ws :])["p99_ms"],
            "rest_p99_ms": summarize_ms(tally.rest_latencies[self.last_rest :])["p99_ms"],
            "edit_p99_ms": summarize_ms(tally.edit_latencies[self.last_edit_latency :])["p99_ms"],
            "lost": lost,
            "lost_edits": lost_edits,
            "unposted": tally.unposted(before),
            "refused": len(tally.refused),
            "dup": sum(client.duplicates for client in soak.clients),
            "ooo": sum(count_order(client.event_ids) for client in soak.clients),
            "open_sockets": sum(1 for client in soak.clients if soak.usable(client)),
            "churned": soak.churned,
            "drops": soak.drops,
            "reconnect_failures": soak.reconnect_failures,
            "resyncs": soak.resyncs,
            "rest_failures": sum(soak.rest_failures.values()),
            "rss_mib": rss,
            "rss_growth_mib": [round(r - f, 1) for r, f in zip(rss, self.first_rss, strict=True)],
            "cpu_pct": [round(100 * (c - p) / wall, 1) for c, p in zip(cpu, self.last_cpu, strict=True)],
            "generator_cpu_pct": round(100 * (own - self.last_own) / wall, 1),
            "generator_rss_mib": round(rss_bytes(os.getpid()) / MiB, 1),
            "load_1m": round(os.getloadavg()[0], 2),
            **probes,
        }
        self.last_wall, self.last_cpu, self.last_own = now, cpu, own
        self.last_latency, self.last_edit_latency = len(tally.latencies), len(tally.edit_latencies)
        self.last_ws, self.last_rest = len(tally.ws_latencies), len(tally.rest_latencies)
        self.last_delivered, self.last_updates = tally.delivered, tally.update_deliveries
        self.last_actions = Counter(soak.actions)
        self.rows.append(row)
        print(line(row), flush=True)
        return row

    async def loop(self, seconds: float) -> None:
        # Rows on a fixed schedule, so a slow sample does not shift the ones after it.
        end = self.start + seconds
        number = 1
        while True:
            due = min(self.start + number * self.soak.args.interval, end)
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            await self.sample()
            if due >= end:
                return
            number += 1


HEADER = (
    f"{'min':>5} {'sent':>5} {'deliv':>6} {'upd':>5} {'p50':>6} {'p95':>6} {'p99':>7} {'max':>7} "
    f"{'lost':>4} {'dup':>3} {'ooo':>3} {'open':>4} {'churn':>5} {'RSS MiB':>13} {'growth':>11} "
    f"{'CPU %':>11} {'db':>3} {'redis':>6} {'load':>5}"
)


def line(row: dict[str, Any]) -> str:
    return (
        f"{row['elapsed_s'] / 60:5.1f} {row['messages_sent']:5d} {row['deliveries']:6d} "
        f"{row['update_deliveries']:5d} {row['p50_ms']:6.1f} {row['p95_ms']:6.1f} {row['p99_ms']:7.1f} "
        f"{row['max_ms']:7.1f} {row['ws_p99_ms']:7.1f} {row['rest_p99_ms']:7.1f} {row['edit_p99_ms']:7.1f} "
        f"{row['lost']:4d} {row['dup']:3d} {row['ooo']:3d} {row['open_sockets']:4d} "
        f"{row['churned']:5d} {'/'.join(f'{r:.0f}' for r in row['rss_mib']):>13} "
        f"{'/'.join(f'{g:+.0f}' for g in row['rss_growth_mib']):>11} "
        f"{'/'.join(f'{c:.0f}' for c in row['cpu_pct']):>11} {row['db_connections'] or '-':>3} "
        f"{row['redis_used_mib'] or '-':>6} {row['load_1m']:5.2f}"
    )


def slope_per_hour(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MiB) points, in MiB per hour; None for fewer than 3 points."""
    if len(points) < 3:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return None
    return round(sum((t - mean_t) * (v - mean_v) for t, v in points) / spread * 3600, 1)


def plan(args: argparse.Namespace) -> tuple[Plan, int]:
    """Every user in one small room and one big room; return the plan and how many rooms are small."""
    users = args.sockets
    small = [list(range(start, min(start + args.small_size, users))) for start in range(0, users, args.small_size)]
    big = [list(range(b, users, args.big_rooms)) for b in range(args.big_rooms)]
    return Plan(users=users, rooms=small + big), len(small)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    # REST calls run in threads; enough of them that a slow answer does not hold back the next call.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(args.rest_threads))
    run_id = uuid.uuid4().hex[:8]
    workdir = Path(tempfile.mkdtemp(prefix=f"soak-{run_id}-"))
    servers = start_servers(args, run_id, workdir)
    meta: dict[str, Any] = {
        "run": run_id,
        "args": {key: str(value) for key, value in vars(args).items()},
        "machine": machine(),
        "database": servers[0].database,
        "redis": servers[0].redis,
        "logs": [str(server.log_path) for server in servers],
    }
    print(f"== soak {run_id}: {servers[0].database} database, logs in {workdir}", file=sys.stderr)
    await asyncio.to_thread(servers[0].prepare_database)
    the_plan, small_count = plan(args)
    seeded = await asyncio.to_thread(servers[0].seed, the_plan.users, the_plan.rooms)
    try:
        for server in servers:
            await asyncio.to_thread(server.start)
            if not args.pin and hasattr(os, "sched_setaffinity"):
                # loadtest pins every server to CPU 0; two servers beside other work share the machine instead.
                os.sched_setaffinity(server.pid, range(os.cpu_count() or 1))
        clients, members_of = make_clients(the_plan, seeded)
        soak = Soak(
            args,
            servers,
            clients,
            members_of,
            small_rooms=seeded.rooms[:small_count],
            big_rooms=seeded.rooms[small_count:],
        )
        gate = asyncio.Semaphore(args.connect_concurrency)

        async def first_open(client: Client) -> bool:
            async with gate:
                return await soak.reconnect(client)

        opened = await asyncio.gather(*(first_open(client) for client in clients))
        print(f"   {sum(opened)}/{len(clients)} sockets open on {len(servers)} servers", file=sys.stderr)
        meta["connect_failures"] = opened.count(False)
        recorder = Recorder(soak, Probes(servers, run_id))
        print(HEADER, flush=True)
        churn = asyncio.create_task(soak.churn_loop())
        seconds = args.minutes * 60
        try:
            await asyncio.gather(soak.send_loop(seconds), recorder.loop(seconds))
        finally:
            soak.stopping = True
            await churn
        # Churn waves and reconnections under way finish (each is bounded by its retries), then the drain.
        while soak.pending:
            await asyncio.wait(set(soak.pending), timeout=args.drain_max)
        drain_start = time.perf_counter()
        tally = soak.tally

        def expected() -> int:
            return tally.expected(members_of)

        await drain(tally, expected, idle=args.drain_idle, most=args.drain_max)
        # Edits have no count in the Tally: wait for them (and any late message) the same bounded way.
        while time.perf_counter() - drain_start < args.drain_max:
            if not tally.lost(members_of, time.perf_counter())[0]:
                break
            await asyncio.sleep(0.5)
        final = await recorder.sample(final=True)
        meta["drain_s"] = round(time.perf_counter() - drain_start, 1)
        for server in servers:
            if server.process is not None and server.process.poll() is not None:
                meta.setdefault("server_exits", []).append(server.process.returncode)
        await asyncio.gather(*(close(client) for client in clients))
    finally:
        for server in servers:
            server.stop()
        servers[0].cleanup()
    rows = recorder.rows
    warm = [row for row in rows if row["elapsed_s"] >= args.warmup * 60]
    slopes = [slope_per_hour([(row["elapsed_s"], row["rss_mib"][i]) for row in warm]) for i in range(len(servers))]
    all_latency = tally.latencies + tally.edit_latencies
    totals = {
        "actions": dict(soak.actions),
        "messages_sent": len(tally.sent_at),
        "edits_sent": len(tally.edit_sent),
        "deliveries": tally.delivered,
        "update_deliveries": tally.update_deliveries,
        "frames_received": dict(tally.kinds),
        "lost": final["lost"],
        "lost_edits": final["lost_edits"],
        "unposted": final["unposted"],
        "duplicated": final["dup"],
        "out_of_order": final["ooo"],
        "refused": dict(Counter(tally.refused.values())),
        "ws_errors": dict(tally.errors),
        "rest_failures": dict(soak.rest_failures),
        "churned": soak.churned,
        "drops": soak.drops,
        "reconnect_failures": soak.reconnect_failures,
        "resyncs": soak.resyncs,
        **summarize_ms(all_latency),
        "ws_message": summarize_ms(tally.ws_latencies),
        "rest_message": summarize_ms(tally.rest_latencies),
        "edit": summarize_ms(tally.edit_latencies),
        "rss_first_mib": rows[0]["rss_mib"] if rows else None,
        "rss_last_mib": final["rss_mib"],
        "rss_slope_mib_per_h": slopes,
        "warmup_min": args.warmup,
        "p99_ms_per_row": [row["p99_ms"] for row in rows],
    }
    totals["verdict"] = (
        "ok"
        if not (totals["lost"] or totals["duplicated"] or totals["out_of_order"] or totals["unposted"])
        else "FAILED"
    )
    meta["machine"]["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
    return {"meta": meta, "intervals": rows, "totals": totals}


async def close(client: Client) -> None:
    if client.ws is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.ws.close(), 5)
    if client.reader is not None:
        client.reader.cancel()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="minutes of traffic")
    parser.add_argument("--sockets", type=int, default=300, help="clients, one socket and one user each")
    parser.add_argument("--servers", type=int, default=2, help="Daphne processes")
    parser.add_argument("--rate", type=float, default=30.0, help="actions per second, all kinds together")
    parser.add_argument("--small-size", type=int, default=5, help="members of each small room")
    parser.add_argument("--big-rooms", type=int, default=3, help="big rooms (every user is in one)")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between rows")
    parser.add_argument("--grace", type=float, default=30.0, help="a delivery missing this long counts as lost")
    parser.add_argument("--churn-every", type=float, default=120.0, help="seconds between churn waves")
    parser.add_argument("--churn-fraction", type=float, default=0.1, help="share of clients in each churn wave")
    parser.add_argument("--warmup", type=float, default=5.0, help="minutes left out of the RSS slope")
    parser.add_argument("--connect-concurrency", type=int, default=50, help="handshakes in flight at first")
    parser.add_argument("--drain-idle", type=float, default=5.0, help="drain: stop after this long with no arrival")
    parser.add_argument("--drain-max", type=float, default=60.0, help="drain at most this long")
    parser.add_argument("--pin", action="store_true", help="keep the servers on CPU 0, as loadtest.py does")
    parser.add_argument("--rest-threads", type=int, default=32, help="threads for REST calls (open loop)")
    parser.add_argument("--db-name", default="chatbench_soak", help="database on DATABASE_URL's server")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    args.warmup = min(args.warmup, args.minutes / 3)
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.servers > 1 and not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
        # Without them each process would have its own SQLite file or in-memory layer: not one server.
        raise SystemExit("--servers > 1 needs DATABASE_URL and REDIS_URL (or use --servers 1)")
    raise_file_limit()
    # Bounded: traffic, start-up (migrate, seed, connect) and drain each have a ceiling.
    budget = args.minutes * 60 + 900 + 3 * args.drain_max
    report = asyncio.run(asyncio.wait_for(run(args), budget))
    totals = report["totals"]
    print()
    print(
        f"verdict {totals['verdict']}: lost {totals['lost']} dup {totals['duplicated']} "
        f"ooo {totals['out_of_order']} unposted {totals['unposted']}; {totals['messages_sent']} messages, "
        f"{totals['edits_sent']} edits, {totals['deliveries']} deliveries, p99 {totals['p99_ms']} ms; "
        f"churned {totals['churned']}, drops {totals['drops']}; RSS slope {totals['rss_slope_mib_per_h']} MiB/h"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
