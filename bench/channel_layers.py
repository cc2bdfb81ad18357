"""Measure channels-redis's two layers for a 200-member room, and for what this server sends through them.

    .venv/bin/python bench/channel_layers.py --out bench/results/channel_layers.json

Needs a Redis at --redis (default redis://127.0.0.1:6379/0); every key it
touches starts with a fresh `bench-<random>` prefix and is flushed at the
end. Django is not needed. Each run lasts --seconds of sending plus at
most a few seconds of draining; the default set of runs takes about two
minutes. The figures and the decision they led to are in
docs/performance.md.

Two scenarios, each for `RedisChannelLayer` (core) and
`RedisPubSubChannelLayer` (pubsub), at each rate of --rates messages a
second:

fanout
    The tutorial design, and this server's typing and presence frames: one
    process holds --members channels (one per socket) in one group, and
    every message is one `group_send` to that group, received by a task per
    channel calling `layer.receive()` as a consumer does.
doorbell
    This server's design for persistent events (realtime/delivery.py): the
    layer carries one `group_send` per message to a group of --processes
    channels, one per server process; each process then hands the event to
    its share of the --members sockets through in-process queues, without
    the layer. (The real pump also reads the event from the database, once
    per wake-up per process, which this harness leaves out.)

Per run it reports: the send rate reached; deliveries a second (messages
that reached a member's receiver, divided by the time from the first send
to the last delivery); deliveries lost (not received by the end of the
drain, which stops when all have arrived or none arrived for
--drain-idle seconds); deliveries received out of order; latency p50, p99
and max, from the moment the message was due to be sent (a timestamp in
the message) to its receipt, so a sender falling behind shows as latency;
and CPU seconds: of the receiving process (`CPU s`, the server process
holding the sockets; `µs/deliv` divides it by the deliveries), of the
sending process (`send s`), and of the Redis server (INFO cpu; another
client of the same Redis adds to it).

By default the messages are sent from a child process, as in a deployment
where the sender's socket lives on another server process; `--sender
inline` sends from the receivers' own event loop instead, which slows the
sender down whenever the receivers fall behind and so hides the layer's
capacity limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer

LAYERS = {"core": RedisChannelLayer, "pubsub": RedisPubSubChannelLayer}
SCENARIOS = ("fanout", "doorbell")


@dataclass
class Result:
    layer: str
    scenario: str
    members: int
    layer_channels: int
    rate: int
    seconds: float
    sent: int
    send_rate: float
    expected: int
    delivered: int
    deliveries_per_second: float
    lost: int
    reordered: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    cpu_seconds: float
    sender_cpu_seconds: float
    redis_cpu_seconds: float
    cpu_us_per_delivery: float


class Tally:
    """Deliveries seen by the receivers: latency, count, order."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.reordered = 0
        self.last_arrival = 0.0
        self.progress = asyncio.Event()

    def record(self, message: dict[str, Any], last_seq: list[int], slot: int) -> None:
        now = time.time()
        self.latencies.append(now - message["due"])
        self.last_arrival = now
        if message["seq"] < last_seq[slot]:
            self.reordered += 1
        last_seq[slot] = message["seq"]
        self.progress.set()


def make_layer(kind: str, url: str, prefix: str, capacity: int) -> Any:
    hosts = [{"address": url}]
    if kind == "core":
        # The options chatproject/settings.py used when this was measured.
        return RedisChannelLayer(hosts=hosts, prefix=prefix, capacity=capacity, group_expiry=86400)
    return RedisPubSubChannelLayer(hosts=hosts, prefix=prefix)


async def send_messages(layer: Any, group: str, *, start: float, rate: int, total: int) -> float:
    """Send `total` messages to `group` at `rate` a second from `start`; return the seconds it took."""
    for seq in range(total):
        due = start + seq / rate
        delay = due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await layer.group_send(group, {"type": "bench.message", "seq": seq, "due": due})
    return time.time() - start


def sender_process(
    kind: str, url: str, prefix: str, capacity: int, group: str, start: float, rate: int, total: int, results: Any
) -> None:
    """Run in a child process: the senders of a real deployment are other server processes."""

    async def run() -> tuple[float, float]:
        layer = make_layer(kind, url, prefix, capacity)
        # Open the connection before the clock starts: the first send must not pay for it.
        await layer.group_send("bench.warmup", {"type": "bench.warmup"})
        cpu = time.process_time()
        elapsed = await send_messages(layer, group, start=start, rate=rate, total=total)
        if hasattr(layer, "close_pools"):
            await layer.close_pools()
        else:
            await layer.flush()
        return elapsed, time.process_time() - cpu

    results.put(asyncio.run(run()))


async def redis_cpu(url: str) -> float:
    client = aioredis.from_url(url)
    try:
        info = await client.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
    finally:
        await client.aclose()


async def run_one(
    *, kind: str, scenario: str, url: str, members: int, processes: int, rate: int, seconds: float, args: Any
) -> Result:
    prefix = f"bench-{uuid.uuid4().hex[:10]}"
    layer = make_layer(kind, url, prefix, args.capacity)
    group = "room.bench" if scenario == "fanout" else "events.doorbell"
    tally = Tally()
    tasks: list[asyncio.Task[None]] = []
    layer_channels = members if scenario == "fanout" else processes
    last_seq = [-1] * members

    async def consumer(channel: str, slot: int) -> None:
        # What a Channels consumer does: receive from its own channel, forever.
        while True:
            message = await layer.receive(channel)
            tally.record(message, last_seq, slot)

    async def process_pump(channel: str, sockets: list[asyncio.Queue[dict[str, Any]]]) -> None:
        # One server process: a doorbell wakes it, it offers the event to each local socket.
        while True:
            message = await layer.receive(channel)
            for outbox in sockets:
                outbox.put_nowait(message)

    async def socket_writer(outbox: asyncio.Queue[dict[str, Any]], slot: int) -> None:
        while True:
            tally.record(await outbox.get(), last_seq, slot)

    for index in range(layer_channels):
        channel = await layer.new_channel("bench.")
        await layer.group_add(group, channel)
        if scenario == "fanout":
            tasks.append(asyncio.create_task(consumer(channel, index)))
        else:
            share = range(index, members, processes)
            outboxes: list[asyncio.Queue[dict[str, Any]]] = [asyncio.Queue() for _ in share]
            tasks.append(asyncio.create_task(process_pump(channel, outboxes)))
            tasks += [asyncio.create_task(socket_writer(q, slot)) for q, slot in zip(outboxes, share, strict=True)]
    await asyncio.sleep(0.3)  # let subscriptions settle (pub/sub subscribes asynchronously)

    total = int(rate * seconds)
    cpu_before, redis_before = time.process_time(), await redis_cpu(url)
    sender_cpu = 0.0
    if args.sender == "inline":
        start = time.time()
        send_elapsed = await send_messages(layer, group, start=start, rate=rate, total=total)
    else:
        context = multiprocessing.get_context("spawn")
        returned = context.Queue()
        start = time.time() + 2.0  # the child needs a moment to start Python and connect
        child = context.Process(
            target=sender_process, args=(kind, url, prefix, args.capacity, group, start, rate, total, returned)
        )
        child.start()
        send_elapsed, sender_cpu = await asyncio.to_thread(returned.get, True, seconds + 60)
        await asyncio.to_thread(child.join, 10)

    expected = total * members
    drain_deadline = time.time() + args.drain_max
    while len(tally.latencies) < expected and time.time() < drain_deadline:
        tally.progress.clear()
        try:
            await asyncio.wait_for(tally.progress.wait(), args.drain_idle)
        except TimeoutError:
            break
    cpu_used = time.process_time() - cpu_before
    redis_used = await redis_cpu(url) - redis_before

    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await layer.flush()
    if hasattr(layer, "close_pools"):
        await layer.close_pools()

    latencies = sorted(tally.latencies)
    delivered = len(latencies)
    span = max(tally.last_arrival - start, send_elapsed, 1e-9)

    def pct(p: float) -> float:
        if not latencies:
            return float("nan")
        return round(1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))], 2)

    return Result(
        layer=kind,
        scenario=scenario,
        members=members,
        layer_channels=layer_channels,
        rate=rate,
        seconds=seconds,
        sent=total,
        # The last message is due (total - 1) / rate after the first.
        send_rate=round((total - 1) / send_elapsed, 1) if total > 1 else float(total),
        expected=expected,
        delivered=delivered,
        deliveries_per_second=round(delivered / span, 1),
        lost=expected - delivered,
        reordered=tally.reordered,
        p50_ms=pct(0.50),
        p99_ms=pct(0.99),
        max_ms=round(1000 * latencies[-1], 2) if latencies else float("nan"),
        cpu_seconds=round(cpu_used, 3),
        sender_cpu_seconds=round(sender_cpu, 3),
        redis_cpu_seconds=round(redis_used, 3),
        cpu_us_per_delivery=round(1e6 * cpu_used / delivered, 2) if delivered else float("nan"),
    )


def table(results: list[Result]) -> str:
    header = (
        f"{'layer':<7}{'scenario':<10}{'rate':>6}{'sent/s':>8}{'deliv/s':>10}{'lost':>8}{'reord':>7}"
        f"{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'CPU s':>8}{'send s':>8}{'Redis s':>9}{'µs/deliv':>10}"
    )
    rows = [header, "-" * len(header)]
    for r in results:
        rows.append(
            f"{r.layer:<7}{r.scenario:<10}{r.rate:>6}{r.send_rate:>8.1f}{r.deliveries_per_second:>10.0f}"
            f"{r.lost:>8}{r.reordered:>7}{r.p50_ms:>9.1f}{r.p99_ms:>9.1f}{r.max_ms:>9.1f}"
            f"{r.cpu_seconds:>8.2f}{r.sender_cpu_seconds:>8.2f}{r.redis_cpu_seconds:>9.2f}{r.cpu_us_per_delivery:>10.1f}"
        )
    return "\n".join(rows)


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    with_cpuinfo = Path("/proc/cpuinfo")
    if with_cpuinfo.exists():
        for line in with_cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import channels_redis
    import redis

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "channels_redis": channels_redis.__version__,
        "redis_py": redis.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--layers", default="core,pubsub", help="comma-separated: core, pubsub")
    parser.add_argument("--scenarios", default="fanout,doorbell", help="comma-separated: fanout, doorbell")
    parser.add_argument("--rates", default="20,50,100,200", help="messages a second, comma-separated")
    parser.add_argument("--seconds", type=float, default=5.0, help="sending time per run")
    parser.add_argument("--members", type=int, default=200, help="sockets in the room")
    parser.add_argument("--processes", type=int, default=2, help="server processes (doorbell channels)")
    parser.add_argument("--capacity", type=int, default=1000, help="RedisChannelLayer capacity")
    parser.add_argument("--drain-idle", type=float, default=2.0, help="stop draining after this long without news")
    parser.add_argument("--drain-max", type=float, default=15.0, help="never drain longer than this")
    parser.add_argument(
        "--sender",
        choices=("process", "inline"),
        default="process",
        help="send from a child process, as another server process would (default), or from the receivers' loop",
    )
    parser.add_argument("--out", type=Path, help="write the results here as JSON")
    args = parser.parse_args(argv)

    layers = [name.strip() for name in args.layers.split(",") if name.strip()]
    scenarios = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    rates = [int(rate) for rate in args.rates.split(",") if rate.strip()]
    unknown = (set(layers) - set(LAYERS)) | (set(scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown layer or scenario: {', '.join(sorted(unknown))}")

    results: list[Result] = []
    for scenario in scenarios:
        for rate in rates:
            for kind in layers:
                result = asyncio.run(
                    run_one(
                        kind=kind,
                        scenario=scenario,
                        url=args.redis,
                        members=args.members,
                        processes=args.processes,
                        rate=rate,
                        seconds=args.seconds,
                        args=args,
                    )
                )
                results.append(result)
                print(table([result]).splitlines()[-1], flush=True)
    print()
    print(table(results))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "machine": machine(),
            "settings": {k: str(v) for k, v in vars(args).items()},
            "results": [asdict(result) for result in results],
        }
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
