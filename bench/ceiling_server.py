"""A bare ceiling for bench/loadtest.py: the least a chat server can do per message.

    .venv/bin/python bench/ceiling_server.py --port 8765 --redis redis://127.0.0.1:6379/0

One process: a `websockets` server, one Redis PUBLISH per message received
and one subscription per process whose messages it fans out to its local
sockets, each frame encoded once (`websockets.broadcast`). No Django, no
database, no authentication beyond the token naming the user and rooms, no
persistence: it speaks just enough of docs/websocket.md for the load test
(`hello`, `message.send` in, `message.new` out, `resume.done`, `pong`).

The token (`Authorization: Bearer <user id>:<room id>,<room id>…`) says who
the socket is and which rooms it hears. The subscriber numbers messages in
the order it receives them (one process, one subscription: one order) and
keeps the last --keep of them in memory, so `?last_event_id=N` replays what
a socket missed, as the real server does from its database; that is only
correct for a single process, which is all the load test runs.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import signal
import uuid
from urllib.parse import parse_qs, urlsplit

import redis.asyncio as aioredis
import websockets
from websockets.asyncio.server import ServerConnection, broadcast, serve


class Ceiling:
    def __init__(self, redis_url: str, keep: int) -> None:
        self.redis = aioredis.from_url(redis_url)
        self.topic = f"ceiling-{uuid.uuid4().hex[:8]}"
        self.rooms: dict[int, set[ServerConnection]] = collections.defaultdict(set)
        self.log: collections.deque[tuple[int, int, str]] = collections.deque(maxlen=keep)
        self.last_id = 0

    async def subscribe(self) -> None:
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(self.topic)
        async for item in pubsub.listen():
            if item["type"] != "message":
                continue
            incoming = json.loads(item["data"])
            self.last_id += 1
            room = incoming["room"]
            text = json.dumps(
                {
                    "type": "message.new",
                    "event_id": self.last_id,
                    "room": room,
                    "message": {
                        "id": self.last_id,
                        "room": room,
                        "author": {"id": incoming["author"]},
                        "body": incoming["body"],
                        "client_id": incoming["client_id"],
                    },
                },
                separators=(",", ":"),
            )
            self.log.append((self.last_id, room, text))
            broadcast(self.rooms.get(room, ()), text)

    async def handle(self, connection: ServerConnection) -> None:
        request = connection.request
        assert request is not None
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        user_text, _, rooms_text = token.partition(":")
        try:
            user_id = int(user_text)
            rooms = [int(room) for room in rooms_text.split(",") if room]
        except ValueError:
            await connection.close(1008)
            return
        cursor_values = parse_qs(urlsplit(request.path).query).get("last_event_id")
        # From here to joining the rooms nothing awaits, and broadcast() writes
        # at once: no live frame can overtake the replay.
        newest = self.last_id
        outgoing = [json.dumps({"type": "hello", "user": {"id": user_id}, "last_event_id": newest})]
        if cursor_values:
            cursor = int(cursor_values[0])
            if self.log and cursor < self.log[0][0] - 1:
                outgoing.append('{"type":"resync.required"}')
            else:
                wanted = set(rooms)
                outgoing.extend(text for event_id, room, text in self.log if event_id > cursor and room in wanted)
                outgoing.append(json.dumps({"type": "resume.done", "last_event_id": newest}))
        for text in outgoing:
            broadcast([connection], text)
        for room in rooms:
            self.rooms[room].add(connection)
        try:
            async for raw in connection:
                frame = json.loads(raw)
                kind = frame.get("type")
                if kind == "message.send":
                    payload = {
                        "room": frame["room"],
                        "author": user_id,
                        "body": frame["body"],
                        "client_id": frame["client_id"],
                    }
                    await self.redis.publish(self.topic, json.dumps(payload, separators=(",", ":")))
                elif kind == "ping":
                    await connection.send('{"type":"pong"}')
        except websockets.ConnectionClosed:
            pass
        finally:
            for room in rooms:
                self.rooms[room].discard(connection)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--keep", type=int, default=200_000, help="messages kept in memory for resume")
    args = parser.parse_args()
    ceiling = Ceiling(args.redis, args.keep)
    subscriber = asyncio.create_task(ceiling.subscribe())
    stop = asyncio.get_running_loop().create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set_result, None)
    async with serve(ceiling.handle, args.host, args.port, compression=None, ping_interval=None, backlog=1024):
        print(f"ceiling listening on {args.host}:{args.port}", flush=True)
        await stop
    subscriber.cancel()


if __name__ == "__main__":
    asyncio.run(main())
