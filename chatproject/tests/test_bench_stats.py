"""The load test's arithmetic (bench/loadtest.py): percentiles, loss, doubles and order."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "bench" / "loadtest.py"
_spec = importlib.util.spec_from_file_location("bench_loadtest", _PATH)
assert _spec is not None and _spec.loader is not None
loadtest = importlib.util.module_from_spec(_spec)
sys.modules["bench_loadtest"] = loadtest
_spec.loader.exec_module(loadtest)


def test_percentile_takes_the_nearest_rank() -> None:
    values = list(range(1, 101))
    assert loadtest.percentile(values, 50) == 50
    assert loadtest.percentile(values, 99) == 99
    assert loadtest.percentile(values, 100) == 100
    assert loadtest.percentile([7.0], 99) == 7.0
    assert loadtest.percentile([], 99) == 0.0


def test_summary_is_in_milliseconds() -> None:
    summary = loadtest.summarize_ms([0.001, 0.002, 0.010])
    assert summary == {"p50_ms": 2.0, "p95_ms": 10.0, "p99_ms": 10.0, "max_ms": 10.0}
    assert loadtest.summarize_ms([])["max_ms"] == 0.0


def test_count_order_counts_ids_below_one_already_seen() -> None:
    assert loadtest.count_order([1, 2, 3]) == 0
    assert loadtest.count_order([1, 3, 2, 4]) == 1
    assert loadtest.count_order([5, 1, 2, 3]) == 3


def _message(event_id: int, client_id: str) -> str:
    return json.dumps({"type": "message.new", "event_id": event_id, "room": 1, "message": {"client_id": client_id}})


def test_tally_counts_lost_doubled_and_refused_deliveries() -> None:
    tally = loadtest.Tally()
    alice, bob = loadtest.Client(index=0, token="", rooms=[1]), loadtest.Client(index=1, token="", rooms=[1])
    for client_id, sender in (("a", alice), ("b", bob), ("c", alice), ("d", alice), ("e", bob)):
        tally.sent_at[client_id] = 0.0
        tally.room_of[client_id] = 1
        tally.sender_of[client_id] = sender.index
    tally.on_frame(alice, _message(1, "a"))
    tally.on_frame(alice, _message(2, "b"))
    tally.on_frame(alice, _message(2, "b"))  # a double
    tally.on_frame(bob, _message(2, "b"))
    tally.on_frame(bob, _message(1, "a"))  # out of order
    tally.on_frame(alice, _message(3, "d"))  # posted (alice saw it) but never reached bob
    tally.on_frame(bob, _message(9, "someone-else"))  # not this phase's: ignored
    tally.on_frame(alice, json.dumps({"type": "error", "code": "invalid", "client_id": "c"}))
    # "e" never came back at all: not posted by the end.

    result = loadtest.delivery_result([alice, bob], tally, {1: 2})

    assert result["expected"] == 8  # a, b, d, e to two members; c was refused
    assert result["delivered"] == 5
    assert result["undelivered"] == 3
    assert result["unconfirmed"] == 1
    assert result["lost"] == 1
    assert result["duplicated"] == 1
    assert result["out_of_order"] == 1
    assert result["refused"] == 1
    assert bob.cursor == 9


@pytest.mark.parametrize("rate", [20, 50, 100])
def test_fanout_senders_stay_under_the_per_socket_limit(rate: int) -> None:
    args = loadtest.parse_args(["fanout", "--members", "200"])
    plan = loadtest.plan_for(args)
    seeded = loadtest.Seeded(tokens=[""] * plan.users, rooms=[1])
    clients, members_of = loadtest.make_clients(plan, seeded)
    slots = loadtest.sender_slots(args, clients, rate)
    assert members_of == {1: 200}
    assert rate / len(slots) <= loadtest.SENDER_RATE


def test_storm_plan_adds_senders_to_every_room() -> None:
    args = loadtest.parse_args(["storm", "--sockets", "12", "--rate", "10"])
    plan = loadtest.plan_for(args)
    assert plan.users == 12 + 2
    assert [len(room) for room in plan.rooms] == [6, 6, 3]
    assert all(room[-1] >= 12 for room in plan.rooms)
