"""Resume races (issue 8): a client's rebuilt timeline always equals a fresh read of the database.

A hypothesis state machine drives one client of one room, in-process through
the whole ASGI stack (WebsocketCommunicator, the consumer and the pump), and
interleaves at random: history pages fetched over REST (newest first, as a
client scrolls up), opening a socket fresh or resuming one with the last
event id seen, reading some or none of the frames waiting, disconnecting
with frames still unread, and sends (over REST or the socket, by the client
or another member), repeated sends, edits and deletes.

The client keeps to the protocol of docs/websocket.md: a socket opened without a cursor
takes the hello's `last_event_id` and needs a history fetch begun after it;
otherwise it resumes from the highest event id it has processed. It builds
its timeline from history pages and message.new / message.updated frames; a
message's later state wins (deleted, else the later edit). At the end of each
run it finishes any fetch it owes, resumes once more, and its timeline (ids,
bodies, deleted, edited_at, in id order) must equal the database's; and at
every step the event ids it has processed only grow (none twice, none out of order).

The event loop runs in a thread of its own for the whole test. This test's
own database calls run on asgiref's one thread-sensitive worker; on SQLite
(DB_WORKER_THREADS=0) the consumer's and the pump's do too, so all share one
connection in turn.

RESUME_EXAMPLES and RESUME_STEPS make a longer run (docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import threading
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from rest_framework.test import APIClient

from chatproject.asgi import application
from realtime.tests.test_consumers import (  # noqa: F401 (fixtures: used by name)
    HOST,
    ORIGIN,
    _fresh_realtime_state,
    _release_connections,
    access_token,
    no_rate_limit,
)

pytestmark = pytest.mark.django_db(transaction=True)

RESUME_EXAMPLES = int(os.environ.get("RESUME_EXAMPLES", "10"))
RESUME_STEPS = int(os.environ.get("RESUME_STEPS", "25"))
WAIT = 5.0  # seconds for any one frame, call or handshake
T = TypeVar("T")


class LoopThread:
    """An asyncio event loop in its own thread, for the sockets of every example of the test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="resume-races-loop", daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.run(_cancel_other_tasks())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        if not self.thread.is_alive():
            self.loop.close()


async def _cancel_other_tasks() -> None:
    """Cancel what is still pending on the loop (presence's offline announcements, a pump task) before it stops."""
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), WAIT)


async def in_db_thread[R](function: Callable[..., R], *args: Any) -> R:
    """Run a sync database function on the one thread-sensitive worker (the consumer's too)."""
    return await sync_to_async(function, thread_sensitive=True)(*args)


# --- Sync database work (runs on the worker thread) ---------------------------------------------------


@dataclass
class Cast:
    me: Any
    other: Any
    room: int


def make_cast() -> Cast:
    from accounts.models import User

    tag = uuid.uuid4().hex[:8]
    me = User.objects.create_user(username=f"me{tag}", email=f"me{tag}@example.com", password="x" * 20)
    other = User.objects.create_user(username=f"ot{tag}", email=f"ot{tag}@example.com", password="x" * 20)
    status, room = rest_call(me, "post", "rooms/", {"name": f"Races {tag}"})
    assert status == 201, room
    status, body = rest_call(other, "post", f"rooms/{room['id']}/join/")
    assert status == 200, body
    return Cast(me=me, other=other, room=room["id"])


def rest_call(user: Any, method: str, url: str, data: Any = None) -> tuple[int, Any]:
    client = APIClient()
    client.force_authenticate(user)
    response = getattr(client, method)(f"/api/v1/{url}", data, format="json")
    return response.status_code, (response.json() if response.content else None)


def message_rows(room: int) -> list[tuple[int, int, bool]]:
    """(id, author id, deleted) of the room's messages, in id order."""
    from messaging.models import Message

    return [
        (pk, author, deleted_at is not None)
        for pk, author, deleted_at in Message.objects.filter(room_id=room)
        .order_by("id")
        .values_list("id", "author_id", "deleted_at")
    ]


def database_timeline(room: int) -> list[tuple[int, str, bool, str | None]]:
    """The room's messages as a fresh read shapes them for clients, in id order."""
    from messaging.payloads import message_payload
    from messaging.selectors import messages_with_details

    return [shape(message_payload(message)) for message in messages_with_details().filter(room_id=room).order_by("id")]


def close_db_connections() -> None:
    from django.db import connections

    connections.close_all()


def shape(message: dict[str, Any]) -> tuple[int, str, bool, str | None]:
    return (message["id"], message["body"], message["deleted"], message["edited_at"])


def newer(candidate: dict[str, Any], known: dict[str, Any] | None) -> bool:
    """Whether `candidate` is a later state of a message than `known`: deleted is final, else the later edit."""
    if known is None:
        return True
    return (candidate["deleted"], candidate["edited_at"] or "") > (known["deleted"], known["edited_at"] or "")


# --- The state machine --------------------------------------------------------------------------------


class ResumeRaces(RuleBasedStateMachine):
    """One client of one room; see the module docstring."""

    loop: LoopThread  # set by the test

    def __init__(self) -> None:
        super().__init__()
        self.cast = self.call(make_cast)
        self.communicator: WebsocketCommunicator | None = None
        self.cursor: int | None = None  # the highest event id processed (or a fresh hello's)
        self.processed: list[int] = []
        self.timeline: dict[int, dict[str, Any]] = {}
        self.needs_fetch = True  # no complete history fetch begun since the last fresh open
        self.fetch_before: int | None = None  # the next page of a fetch under way ends below this id
        self.fetch_counts = False  # the fetch under way began after the last fresh open
        self.fetching = False
        self.socket_sends: list[str] = []
        self.counter = 0

    # --- Plumbing

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run(coroutine)

    def call(self, function: Callable[..., T], *args: Any) -> T:
        return self.run(in_db_thread(function, *args))

    def user(self, who: str) -> Any:
        return self.cast.me if who == "me" else self.cast.other

    def next_body(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix} {self.counter}"

    def merge(self, message: dict[str, Any]) -> None:
        if message["room"] == self.cast.room and newer(message, self.timeline.get(message["id"])):
            self.timeline[message["id"]] = message

    def process(self, frame: dict[str, Any]) -> None:
        assert frame["type"] != "error", frame
        if "event_id" not in frame:
            return
        event_id = frame["event_id"]
        assert self.cursor is None or event_id > self.cursor, (self.cursor, frame)
        self.cursor = event_id
        self.processed.append(event_id)
        if frame["type"] in ("message.new", "message.updated"):
            self.merge(frame["message"])

    async def _next_frame(self, within: float) -> dict[str, Any] | None:
        """The next frame the server wrote, or None if none came within `within` seconds."""
        assert self.communicator is not None
        try:
            output = await asyncio.wait_for(self.communicator.output_queue.get(), within)
        except TimeoutError:
            return None
        assert output["type"] != "websocket.close", f"the server closed the socket: {output}"
        return json.loads(output["text"])

    async def _read(self, most: int | None, *, wait: float = 0.02) -> None:
        """Process frames already written (after letting the pump run for `wait` s), up to `most`."""
        await asyncio.sleep(wait)
        count = 0
        while most is None or count < most:
            frame = await self._next_frame(0.001)
            if frame is None:
                return
            self.process(frame)
            count += 1

    async def _open(self, query: str) -> dict[str, Any]:
        token = await in_db_thread(access_token, self.cast.me)
        headers = [HOST, (b"authorization", b"Bearer " + token), ORIGIN]
        self.communicator = WebsocketCommunicator(application, f"/ws/{query}", headers=headers)
        connected, _ = await self.communicator.connect(timeout=WAIT)
        assert connected, "handshake refused"
        hello = await self._next_frame(WAIT)
        assert hello is not None and hello["type"] == "hello", hello
        return hello

    async def _resume(self) -> None:
        await self._open(f"?last_event_id={self.cursor}")
        for _ in range(10_000):
            frame = await self._next_frame(WAIT)
            assert frame is not None, "no resume.done"
            if frame["type"] == "resume.done":
                return
            self.process(frame)
        raise AssertionError("resume never ended")

    async def _disconnect(self, read_first: int) -> None:
        await self._read(read_first)
        assert self.communicator is not None
        communicator, self.communicator = self.communicator, None
        # Frames not read yet are dropped with the socket, as a network drop would.
        await communicator.disconnect(timeout=WAIT)

    def fetch_page(self, limit: int) -> None:
        if not self.fetching:
            self.fetching, self.fetch_before, self.fetch_counts = True, None, True
        query = f"limit={limit}" + (f"&before={self.fetch_before}" if self.fetch_before is not None else "")
        status, page = self.call(rest_call, self.cast.me, "get", f"rooms/{self.cast.room}/messages/?{query}")
        assert status == 200, page
        for message in page["results"]:
            self.merge(message)
        if page["results"]:
            self.fetch_before = page["results"][0]["id"]
        if not page["has_more"] or not page["results"]:
            self.fetching = False
            if self.fetch_counts:
                self.needs_fetch = False

    # --- Rules

    def open_fresh(self) -> None:
        """Open without a cursor: start from the hello's last_event_id; history must be fetched again."""
        hello = self.run(self._open(""))
        assert self.cursor is None or hello["last_event_id"] >= self.cursor, (self.cursor, hello)
        self.cursor = hello["last_event_id"]
        self.needs_fetch = True
        self.fetch_counts = False  # a fetch begun before this open does not cover it

    def resume(self) -> None:
        self.run(self._resume())

    @precondition(lambda self: self.communicator is None)
    @rule(fresh=st.integers(0, 7))
    def connect(self, fresh: int) -> None:
        """Resume from the cursor; one time in eight (and the first time) open fresh instead."""
        if self.cursor is None or fresh == 0:
            self.open_fresh()
        else:
            self.resume()

    @precondition(lambda self: self.communicator is not None)
    @rule(read_first=st.integers(0, 6))
    def disconnect(self, read_first: int) -> None:
        self.run(self._disconnect(read_first))

    @precondition(lambda self: self.communicator is not None)
    @rule(most=st.one_of(st.none(), st.integers(1, 3)))
    def receive(self, most: int | None) -> None:
        self.run(self._read(most))

    # Only when the protocol asks for it: a refetch at will would mask what resume got wrong.
    @precondition(lambda self: self.needs_fetch or self.fetching)
    @rule(limit=st.integers(1, 4))
    def fetch_history_page(self, limit: int) -> None:
        self.fetch_page(limit)

    @rule(who=st.sampled_from(["me", "other"]))
    def send_over_rest(self, who: str) -> None:
        body = {"body": self.next_body(f"rest {who}"), "client_id": uuid.uuid4().hex}
        status, reply = self.call(rest_call, self.user(who), "post", f"rooms/{self.cast.room}/messages/", body)
        assert status == 201, reply

    @precondition(lambda self: self.communicator is not None)
    @rule()
    def send_over_socket(self) -> None:
        client_id = uuid.uuid4().hex
        self.socket_sends.append(client_id)
        frame = {"type": "message.send", "room": self.cast.room, "body": self.next_body("ws"), "client_id": client_id}
        assert self.communicator is not None
        self.run(self.communicator.send_to(text_data=json.dumps(frame)))

    @precondition(lambda self: bool(self.socket_sends))
    @rule(data=st.data())
    def repeat_a_socket_send_over_rest(self, data: st.DataObject) -> None:
        """The same client_id again: the first message (200) once it exists, never a second one."""
        client_id = data.draw(st.sampled_from(self.socket_sends))
        body = {"body": "repeated", "client_id": client_id}
        status, reply = self.call(rest_call, self.cast.me, "post", f"rooms/{self.cast.room}/messages/", body)
        # 201 only if the socket's send has not been handled yet (then the socket's copy becomes the repeat).
        assert status in (200, 201), reply

    @rule(who=st.sampled_from(["me", "other"]), pick=st.integers(0, 1000), delete=st.booleans())
    def edit_or_delete(self, who: str, pick: int, delete: bool) -> None:
        user = self.user(who)
        mine = [
            pk for pk, author, deleted in self.call(message_rows, self.cast.room) if author == user.pk and not deleted
        ]
        if not mine:
            return
        message_id = mine[pick % len(mine)]
        if delete:
            status, reply = self.call(rest_call, user, "delete", f"messages/{message_id}/")
            assert status == 204, reply
        else:
            body = {"body": self.next_body("edited")}
            status, reply = self.call(rest_call, user, "patch", f"messages/{message_id}/", body)
            assert status == 200, reply

    @invariant()
    def event_ids_only_grow(self) -> None:
        assert all(earlier < later for earlier, later in itertools.pairwise(self.processed))

    def teardown(self) -> None:
        try:
            if self.cursor is None:
                self.open_fresh()
            if self.communicator is not None:
                self.run(self._disconnect(0))
            while self.needs_fetch:
                self.fetch_page(4)
            self.resume()
            rebuilt = [shape(self.timeline[pk]) for pk in sorted(self.timeline)]
            assert rebuilt == self.call(database_timeline, self.cast.room)
        finally:
            if self.communicator is not None:
                communicator, self.communicator = self.communicator, None
                self.run(communicator.disconnect(timeout=WAIT))


# The frame rate limit is lifted (no_rate_limit): runs send over 10 frames/s, and rate limits are not the subject.
@pytest.mark.usefixtures("no_rate_limit")
def test_a_resumed_timeline_always_equals_a_fresh_read_of_the_database() -> None:
    loop = LoopThread()
    ResumeRaces.loop = loop
    try:
        run_state_machine_as_test(
            ResumeRaces,
            settings=settings(
                max_examples=RESUME_EXAMPLES,
                stateful_step_count=RESUME_STEPS,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
            ),
        )
    finally:
        loop.run(_release_connections())
        loop.run(in_db_thread(close_db_connections))
        loop.close()
