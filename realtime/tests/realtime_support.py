"""Support for realtime tests against real server processes.

- `ServerPool` starts Daphne processes (the real ASGI app, PostgreSQL and
  Redis) on free loopback ports and always kills them again.
- `ThrowawayRedis` runs a private `redis-server` that a test may restart;
  the machine's own Redis is never touched.
- `Api` registers users and creates rooms over REST with urllib.
- `ChatClient` is a websockets client that records every frame, paces its
  sends under the server's rate limit, and on any disconnect reconnects
  (to the next server that answers) with `?last_event_id=` and re-sends
  the sends it has not seen come back, with the same client_id.
- `delivery_report` is the oracle: it compares what each client received
  with the event log in the database.

Every wait here is bounded in time and in count.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

PROJECT_DIR = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"
HOST = "127.0.0.1"

SERVER_START_TIMEOUT = 45.0
SERVER_STOP_TIMEOUT = 5.0
BIND_ATTEMPTS = 3
HTTP_TIMEOUT = 15.0
# What hold_asgi prints to the server's log once a held event has its id.
HOLDING = "holding the event's transaction open"

_ports_handed_out: set[int] = set()


def free_port() -> int:
    """Return a loopback TCP port that nothing listens on (and this process has not handed out)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((HOST, 0))
            port = probe.getsockname()[1]
        if port not in _ports_handed_out:
            _ports_handed_out.add(port)
            return port
    raise RuntimeError("no free port found")


def live_database_url() -> str:
    """Return a postgres:// URL for the database this test runs in (pytest-django's test_<name>)."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        raise RuntimeError("real-server tests need PostgreSQL (DATABASE_URL)")
    user = quote(str(db.get("USER") or ""), safe="")
    password = quote(str(db.get("PASSWORD") or ""), safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = db.get("HOST") or HOST
    port = db.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{quote(str(db['NAME']), safe='')}"


async def eventually(predicate: Callable[[], bool], within: float, interval: float = 0.05) -> bool:
    """Wait until `predicate()` holds, at most `within` seconds; return whether it did."""
    deadline = time.monotonic() + within
    for _ in range(int(within / interval) + 2):
        if predicate():
            return True
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(interval)
    return predicate()


# --- Server processes --------------------------------------------------------------------------


@dataclass
class Server:
    """One Daphne process serving the chat app on 127.0.0.1:port."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}/ws/"

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no closing handshakes, transactions cut mid-way."""
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=SERVER_STOP_TIMEOUT)

    def stop(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=SERVER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def server_env(*, database_url: str, redis_url: str, channel_prefix: str, **extra: str) -> dict[str, str]:
    """Return the environment for a server process: this one's, pointed at the test database and Redis."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST_", "CHAT_TEST_", "REALTIME_")) and key != "SECRET_KEY"
    }
    env.update(
        DJANGO_SETTINGS_MODULE="chatproject.settings",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        CHANNEL_PREFIX=channel_prefix,
        CACHE_PREFIX=channel_prefix,
        DEBUG="1",
        TESTING="1",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_POOL_MIN="1",
        PYTHONUNBUFFERED="1",
        # Delivery and fault tests drive one account hard on purpose; the tests of
        # these limits pass the real ones (test_realtime_servers.py).
        USER_SEND_RATE="1000000/s",
        WS_MAX_SOCKETS_PER_USER="1000",
    )
    env.update(extra)
    return env


class ServerPool:
    """Starts Daphne processes and guarantees they are gone when the pool closes."""

    application = "chatproject.asgi:application"

    def __init__(self, log_dir: Path, base_env: dict[str, str]) -> None:
        self.log_dir = log_dir
        self.base_env = base_env
        self.servers: list[Server] = []

    def start(self, *names: str, application: str | None = None, **extra_env: str) -> list[Server]:
        """Start one server per name (in parallel) and return them once each answers /healthz.

        `application` replaces the ASGI application (a test's wrapped one).
        """
        env = {**self.base_env, **extra_env}
        application = application or self.application
        started = [self._spawn(name, env, application) for name in names]
        for index, server in enumerate(started):
            for _ in range(BIND_ATTEMPTS):
                try:
                    wait_healthy(server)
                    break
                except ServerDidNotStart:
                    # Another process took the port between probing and binding: try another.
                    if "Address already in use" not in server.log_text():
                        raise
                    server = started[index] = self._spawn(server.name, env, application)
            else:
                raise ServerDidNotStart(f"server {server.name} found no free port in {BIND_ATTEMPTS} tries")
        return started

    def _spawn(self, name: str, env: dict[str, str], application: str) -> Server:
        port = free_port()
        log_path = self.log_dir / f"daphne-{name}-{port}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(  # noqa: S603 (our own interpreter, fixed arguments)
                [
                    sys.executable,
                    "-m",
                    "daphne",
                    "-e",
                    f"tcp:port={port}:interface={HOST}:backlog=1024",
                    application,
                ],
                cwd=PROJECT_DIR,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = Server(name=name, port=port, process=process, log_path=log_path)
        self.servers.append(server)
        return server

    def close(self) -> None:
        for server in self.servers:
            server.kill()

    def logs(self) -> str:
        return "\n".join(f"--- {server.name} ---\n{server.log_tail()}" for server in self.servers)


class ServerDidNotStart(RuntimeError):
    pass


def wait_healthy(server: Server, timeout: float = SERVER_START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.1) + 1):
        if not server.alive():
            raise ServerDidNotStart(
                f"server {server.name} exited with {server.process.returncode}:\n{server.log_tail()}"
            )
        try:
            with urllib.request.urlopen(f"{server.url}/healthz", timeout=2) as reply:  # noqa: S310 (loopback http)
                if reply.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    raise ServerDidNotStart(f"server {server.name} did not answer /healthz in {timeout}s:\n{server.log_tail()}")


def http_status(server: Server, path: str) -> int:
    """GET a path on a server and return the status code."""
    try:
        with urllib.request.urlopen(f"{server.url}{path}", timeout=HTTP_TIMEOUT) as reply:  # noqa: S310 (loopback)
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code


class ThrowawayRedis:
    """A private redis-server on a free loopback port, without persistence, that a test may restart."""

    def __init__(self, workdir: Path, executable: str = "redis-server") -> None:
        self.workdir = workdir
        self.executable = executable
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        log = (self.workdir / f"redis-{self.port}.log").open("ab")
        with log:
            self.process = subprocess.Popen(  # noqa: S603 (fixed arguments)
                [
                    self.executable,
                    "--port",
                    str(self.port),
                    "--bind",
                    HOST,
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.workdir),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10
        for _ in range(200):
            if self.ping():
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def ping(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=1) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def shutdown(self) -> None:
        """SHUTDOWN NOSAVE, as an operator would; kill it if it does not go."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), timeout=1) as connection:
            connection.sendall(b"SHUTDOWN NOSAVE\r\n")
            with contextlib.suppress(OSError):
                connection.recv(16)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def restart(self) -> None:
        """Stop and start again on the same port: every key, group and connection is gone."""
        self.shutdown()
        self.start()
        self.restarts += 1

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)


class ThrowawayPostgres:
    """A private PostgreSQL cluster in a temporary directory, on a free loopback port, that a test may restart.

    Built with the machine's `initdb` and `pg_ctl` (trust authentication,
    fsync off); run as the `postgres` OS user when this process is root,
    since the server refuses to run as root. `close()` stops it and removes
    every file.
    """

    DATABASE = "chat"

    def __init__(self, bin_dir: Path | None = None) -> None:
        self.bin_dir = bin_dir or postgres_bin_dir()
        if self.bin_dir is None:
            raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql")
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="chat-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "server.log"
        self.restarts = 0
        if os.geteuid() == 0:
            import pwd

            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._as_owner = ["runuser", "-u", "postgres", "--"]
        else:
            self._as_owner = []

    @property
    def url(self) -> str:
        return f"postgres://postgres@{HOST}:{self.port}/{self.DATABASE}"

    def _run(self, *arguments: str, timeout: float = 60) -> None:
        subprocess.run(  # noqa: S603 (the machine's own binaries, fixed arguments)
            [*self._as_owner, str(self.bin_dir / arguments[0]), *arguments[1:]],
            check=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            capture_output=True,
        )

    def create(self) -> None:
        """initdb, start, and create the empty `chat` database."""
        self._run(
            "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"
        )
        self._options = (
            f"-p {self.port} -c listen_addresses={HOST} -c unix_socket_directories={self.root}"
            " -c fsync=off -c full_page_writes=off -c max_connections=200"
        )
        self.start()
        import psycopg

        with psycopg.connect(f"postgres://postgres@{HOST}:{self.port}/postgres", autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{self.DATABASE}"')

    def restart(self, mode: str = "fast") -> None:
        """`pg_ctl restart -m <mode>`: every connection is closed; waits until it accepts connections again."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-m", mode, "-w", "-t", "30", "restart")
        self.restarts += 1

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def start(self) -> None:
        """Start (again) on the same port and data."""
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", self._options, "-w", "-t", "30", "start"
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def close(self) -> None:
        """Stop the server (immediately) and remove the cluster."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop")
        except (subprocess.SubprocessError, OSError):
            pass
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def postgres_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin that has initdb and pg_ctl, if any."""
    candidates = [
        path.parent for path in Path("/usr/lib/postgresql").glob("*/bin/initdb") if (path.parent / "pg_ctl").exists()
    ]
    candidates.sort(key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0)
    return candidates[-1] if candidates else None


def migrate(database_url: str) -> None:
    """Apply every migration to the database at `database_url` (`manage.py migrate`, in a subprocess)."""
    env = server_env(database_url=database_url, redis_url=os.environ.get("REDIS_URL", ""), channel_prefix="migrate")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "--skip-checks", "-v", "0"],
        cwd=PROJECT_DIR,
        env=env,
        check=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )


@contextlib.contextmanager
def django_pointed_at(database_url: str) -> Iterator[None]:
    """Point this process's default database connection at another database for a while (the oracle reads it)."""
    import environ
    from django.db import connections

    connection = connections["default"]
    saved = dict(connection.settings_dict)
    target = environ.Env.db_url_config(database_url)

    def reset() -> None:
        connection.close()
        if connection.settings_dict.get("OPTIONS", {}).get("pool"):
            connection.close_pool()

    reset()
    connection.settings_dict.update({key: target[key] for key in ("NAME", "USER", "PASSWORD", "HOST", "PORT")})
    try:
        yield
    finally:
        reset()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


# --- REST -----------------------------------------------------------------------------------------


@dataclass
class Account:
    user_id: int
    username: str
    access: str


class ApiError(AssertionError):
    pass


class Api:
    """A minimal REST client for one server (urllib, JSON, bearer tokens)."""

    def __init__(self, server: Server) -> None:
        self.base = f"{server.url}/api/v1/"

    def call(self, method: str, path: str, body: Any = None, *, token: str | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)  # noqa: S310 (loopback http)
        request.add_header("Content-Type", "application/json")
        request.add_header("Accept", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as reply:  # noqa: S310
                raw = reply.read()
                return reply.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                return error.code, json.loads(raw) if raw else None
            except ValueError:
                return error.code, raw.decode(errors="replace")

    def expect(self, status: int | tuple[int, ...], method: str, path: str, body: Any = None, **kw: Any) -> Any:
        code, reply = self.call(method, path, body, **kw)
        wanted = (status,) if isinstance(status, int) else status
        if code not in wanted:
            raise ApiError(f"{method} {path} -> {code} (wanted {status}): {reply}")
        return reply

    def register(self, username: str) -> Account:
        reply = self.expect(
            201,
            "POST",
            "auth/register/",
            {"username": username, "email": f"{username}@example.com", "password": PASSWORD},
        )
        return Account(user_id=reply["user"]["id"], username=username, access=reply["access"])

    def create_room(self, owner: Account, name: str, *, private: bool = False) -> int:
        body = {"name": name, "visibility": "private" if private else "public"}
        return int(self.expect(201, "POST", "rooms/", body, token=owner.access)["id"])

    def join(self, account: Account, room_id: int) -> None:
        self.expect(200, "POST", f"rooms/{room_id}/join/", token=account.access)

    def add_member(self, actor: Account, room_id: int, user: Account) -> None:
        self.expect((200, 201), "POST", f"rooms/{room_id}/members/", {"user": user.user_id}, token=actor.access)

    def post_message(self, author: Account, room_id: int, body: str, client_id: str | None = None) -> dict[str, Any]:
        payload: dict[str, Any] = {"body": body}
        if client_id is not None:
            payload["client_id"] = client_id
        return self.expect((200, 201), "POST", f"rooms/{room_id}/messages/", payload, token=author.access)


# --- WebSocket client ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One frame with an event_id, as a client saw it."""

    event_id: int
    type: str
    room: int | None
    message_id: int | None
    client_id: str | None
    author: int | None
    socket: int
    server: str
    at: float


def _room_of(frame: dict[str, Any]) -> int | None:
    room = frame.get("room")
    if isinstance(room, dict):
        return room.get("id")
    return room


# Return a server to hop to at once (dropping any frames not yet read), or None to carry on.
EventHook = Callable[["ChatClient", Received], "Server | None"]


class ChatClient:
    """One device of one user: a socket that reconnects with its cursor and records everything.

    Sends are paced below the server's per-socket rate limit. A send stays
    pending until the client sees its own `message.new` (matched by
    client_id); after every reconnect, once `resume.done` arrives, pending
    sends go out again with the same client_id.
    """

    MAX_CONNECT_ATTEMPTS = 300
    MAX_SESSIONS = 100

    def __init__(
        self,
        name: str,
        account: Account,
        servers: Sequence[Server],
        *,
        rate: float = 8.0,
        reconnect_window: float = 30.0,
        on_event: EventHook | None = None,
        receive_buffer: int | None = None,
    ) -> None:
        self.name = name
        self.receive_buffer = receive_buffer  # SO_RCVBUF in bytes: small for a client that stops reading
        self.account = account
        self.servers = list(servers)
        self.rate = rate
        self.reconnect_window = reconnect_window
        self.on_event = on_event

        self.events: list[Received] = []
        self.message_ids: set[int] = set()
        self.errors: list[dict[str, Any]] = []
        self.closes: list[tuple[str, int | None, str]] = []
        self.connect_failures: list[str] = []
        self.connected_to: list[str] = []
        self.start_cursor: int | None = None
        self.cursor: int | None = None
        self.resumes = 0
        self.resyncs = 0
        self.other_frames: Counter[str] = Counter()
        self.typing: list[tuple[int, int]] = []  # (room, user) of each typing frame

        self.pending: dict[str, dict[str, Any]] = {}
        self.confirmed: dict[str, int] = {}
        self.sent_rooms: dict[str, int] = {}
        self.sent_at: dict[str, float] = {}
        self.confirmed_at: dict[str, float] = {}
        self.transmissions: Counter[str] = Counter()

        self.server: Server | None = None
        self._ws: ClientConnection | None = None
        self._live = asyncio.Event()
        self._reading = asyncio.Event()
        self._reading.set()
        self._stopping = False
        self._hop_to: Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._next_send_at = 0.0
        self._background: set[asyncio.Task[Any]] = set()
        self.gave_up: str | None = None

    # --- Lifecycle

    async def start(self, within: float = 15.0) -> ChatClient:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"client-{self.name}")
        if not await eventually(lambda: self._live.is_set() or self._task is None or self._task.done(), within):
            raise AssertionError(f"{self.name}: not live after {within}s ({self.connect_failures[-3:]})")
        if not self._live.is_set():
            raise AssertionError(f"{self.name}: could not connect: {self.gave_up} {self.connect_failures[-3:]}")
        return self

    async def stop(self) -> None:
        self._stopping = True
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 3)
        for task in [self._task, *self._background]:
            if task is not None and not task.done():
                task.cancel()
        for task in [self._task, *self._background]:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, 3)

    async def hop(self, to: Server) -> None:
        """Drop the socket and reconnect, with the cursor, to `to`."""
        self._hop_to = to
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 3)

    async def disconnect(self) -> None:
        """Close the socket and stay away until `reconnect()`; the cursor is kept."""
        self._stopping = True
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 3)
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 5)
        self._live.clear()

    async def reconnect(self, to: Server | None = None, within: float = 15.0) -> None:
        """Connect again after `disconnect()`, resuming from the cursor."""
        self._stopping = False
        self._hop_to = to
        await self.start(within)

    def pause_reading(self) -> None:
        """Stop taking frames off the socket (a stuck client): the server's writes back up."""
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    @property
    def live(self) -> bool:
        return self._live.is_set()

    # --- Sending

    async def send(self, room: int, body: str, client_id: str | None = None) -> str:
        """Send message.send (paced); return its client_id. It stays pending until echoed back."""
        client_id = client_id or f"{self.name}-{uuid.uuid4().hex[:12]}"
        frame = {"type": "message.send", "room": room, "body": body, "client_id": client_id}
        self.pending[client_id] = frame
        self.sent_rooms[client_id] = room
        self.sent_at[client_id] = time.monotonic()
        await self._transmit(frame)
        return client_id

    async def send_frame(self, frame: dict[str, Any]) -> bool:
        """Send any frame once (paced), if the socket is live; return whether it went out."""
        await self._pace()
        ws = self._ws
        if ws is None or not self._live.is_set():
            return False
        try:
            await ws.send(json.dumps(frame))
        except ConnectionClosed:
            return False
        return True

    async def _pace(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        at = max(now, self._next_send_at)
        self._next_send_at = at + 1.0 / self.rate
        if at > now:
            await asyncio.sleep(at - now)

    async def _transmit(self, frame: dict[str, Any]) -> None:
        await self._pace()
        ws = self._ws
        if ws is None or not self._live.is_set() or frame["client_id"] not in self.pending:
            return  # goes out again after the next resume.done, if still pending
        try:
            await ws.send(json.dumps(frame))
        except ConnectionClosed:
            return
        self.transmissions[frame["client_id"]] += 1

    async def resend_pending(self) -> None:
        """Send every pending send again (same client_id), as a client does after an error frame."""
        await self._resend_pending()

    async def _resend_pending(self) -> None:
        for frame in list(self.pending.values()):
            await self._transmit(frame)

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @property
    def retried(self) -> int:
        """Sends that went out more than once."""
        return sum(1 for count in self.transmissions.values() if count > 1)

    # --- Receiving

    async def _run(self) -> None:
        while not self._stopping:
            if len(self.connected_to) >= self.MAX_SESSIONS:
                self.gave_up = f"more than {self.MAX_SESSIONS} sockets"
                return
            opened = await self._open()
            if opened is None:
                return
            ws, server = opened
            self._ws, self.server = ws, server
            self.connected_to.append(server.name)
            try:
                await self._session(ws, len(self.connected_to), server)
            except ConnectionClosed:
                pass
            except (TimeoutError, ValueError, KeyError) as error:
                self.errors.append({"type": "client.protocol", "detail": repr(error)})
            finally:
                self._live.clear()
                self._ws = None
                self.closes.append((server.name, ws.close_code, ws.close_reason or ""))
                if self._hop_to is None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(ws.close(), 2)

    def _candidates(self) -> list[Server]:
        hop, self._hop_to = self._hop_to, None
        if hop is not None:
            return [hop, *[server for server in self.servers if server is not hop]]
        return self.servers

    async def _open(self) -> tuple[ClientConnection, Server] | None:
        candidates = self._candidates()
        deadline = time.monotonic() + self.reconnect_window
        for attempt in range(self.MAX_CONNECT_ATTEMPTS):
            if self._stopping:
                return None
            server = candidates[attempt % len(candidates)]
            url = server.ws_url if self.cursor is None else f"{server.ws_url}?last_event_id={self.cursor}"
            try:
                extra: dict[str, Any] = {}
                if self.receive_buffer is not None:
                    extra["sock"] = await _small_buffer_socket(server, self.receive_buffer)
                ws = await asyncio.wait_for(
                    connect(
                        url,
                        additional_headers={"Authorization": f"Bearer {self.account.access}"},
                        open_timeout=5,
                        close_timeout=1,
                        max_size=2**20,
                        **extra,
                    ),
                    6,
                )
                return ws, server
            except (OSError, InvalidHandshake, TimeoutError) as error:
                self.connect_failures.append(f"{server.name}: {error!r}")
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(min(0.05 * (attempt + 1), 0.5))
        self.gave_up = f"no server answered within {self.reconnect_window}s"
        return None

    async def _session(self, ws: ClientConnection, socket_no: int, server: Server) -> None:
        hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if hello.get("type") != "hello":
            raise ValueError(f"first frame is not hello: {hello}")
        resuming = self.cursor is not None
        if self.start_cursor is None:
            self.start_cursor = self.cursor = int(hello["last_event_id"])
        if not resuming:
            self._live.set()
        async for raw in ws:
            await self._reading.wait()
            frame = json.loads(raw)
            kind = frame.get("type")
            if "event_id" in frame:
                received = self._record(frame, socket_no, server)
                if self.on_event is not None:
                    target = self.on_event(self, received)
                    if target is not None:
                        # Leave at once: frames behind this one are never read.
                        self._hop_to = target
                        await ws.close()
                        return
            elif kind == "resume.done":
                self.resumes += 1
                self._live.set()
                self._spawn(self._resend_pending())
            elif kind == "resync.required":
                # These tests never prune: a resync means the server lost track of the cursor.
                self.resyncs += 1
                self.errors.append(frame)
                self._stopping = True
                return
            elif kind == "error":
                self._handle_error(frame)
            elif kind == "typing":
                self.typing.append((frame["room"], frame["user"]["id"]))
            else:
                self.other_frames[str(kind)] += 1

    def _record(self, frame: dict[str, Any], socket_no: int, server: Server) -> Received:
        message = frame.get("message") if isinstance(frame.get("message"), dict) else {}
        author = message.get("author") or {}
        received = Received(
            event_id=int(frame["event_id"]),
            type=str(frame["type"]),
            room=_room_of(frame),
            message_id=message.get("id"),
            client_id=message.get("client_id"),
            author=author.get("id"),
            socket=socket_no,
            server=server.name,
            at=time.monotonic(),
        )
        self.events.append(received)
        if self.cursor is None or received.event_id > self.cursor:
            self.cursor = received.event_id
        if received.type == "message.new" and received.message_id is not None:
            self.message_ids.add(received.message_id)
            if received.author == self.account.user_id and received.client_id in self.pending:
                del self.pending[received.client_id]
                self.confirmed[received.client_id] = received.message_id
                self.confirmed_at[received.client_id] = received.at
        return received

    def _handle_error(self, frame: dict[str, Any]) -> None:
        client_id = frame.get("client_id")
        if frame.get("code") == "rate_limited" and client_id in self.pending:
            delay = float(frame.get("retry_after") or 0.2) + 0.05

            async def retry() -> None:
                await asyncio.sleep(delay)
                if client_id in self.pending:
                    await self._transmit(self.pending[client_id])

            self._spawn(retry())
            self.other_frames["rate_limited"] += 1
            return
        self.errors.append(frame)


async def _small_buffer_socket(server: Server, receive_buffer: int) -> socket.socket:
    """A TCP socket to the server with a small receive buffer (set before connecting, so the window stays small)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (HOST, server.port)), 5)
    except BaseException:
        sock.close()
        raise
    return sock


async def stop_all(clients: Iterable[ChatClient]) -> None:
    await asyncio.gather(*(client.stop() for client in clients), return_exceptions=True)


def has_all(expected: dict[ChatClient, set[int]]) -> bool:
    """Whether each client has received every message id expected of it."""
    return all(message_ids <= client.message_ids for client, message_ids in expected.items())


def sent_messages(clients: Iterable[ChatClient]) -> dict[int, int]:
    """Return {message id: room id} for every send the clients have seen come back."""
    return {
        message_id: client.sent_rooms[client_id]
        for client in clients
        for client_id, message_id in client.confirmed.items()
    }


def expected_messages(rooms_of: dict[ChatClient, set[int]], messages: dict[int, int]) -> dict[ChatClient, set[int]]:
    """Return, for each client, the ids of the messages posted in its user's rooms."""
    return {
        client: {message_id for message_id, room in messages.items() if room in rooms}
        for client, rooms in rooms_of.items()
    }


# --- The oracle --------------------------------------------------------------------------------


@dataclass
class DeliveryReport:
    """What one client got, compared with the event log."""

    client: str
    expected: int
    received: int
    lost: list[int] = field(default_factory=list)
    duplicated: list[int] = field(default_factory=list)
    doubled_messages: list[int] = field(default_factory=list)
    out_of_order: list[tuple[int, int]] = field(default_factory=list)
    foreign: list[int] = field(default_factory=list)
    mismatched: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.doubled_messages
            or self.out_of_order
            or self.foreign
            or self.mismatched
        )

    def __str__(self) -> str:
        problems = {
            name: value[:10]
            for name, value in (
                ("lost", self.lost),
                ("duplicated", self.duplicated),
                ("doubled_messages", self.doubled_messages),
                ("out_of_order", self.out_of_order),
                ("foreign", self.foreign),
                ("mismatched", self.mismatched),
            )
            if value
        }
        return f"{self.client}: expected {self.expected}, received {self.received} {problems or 'ok'}"


def delivery_report(client: ChatClient, *, through: int | None = None) -> DeliveryReport:
    """Compare a client's received events with the database (synchronous: call outside the event loop).

    Expected: every event after the client's first cursor (through `through`,
    default the newest) that its user may see — a non-private event of a room
    they are a member of, from the event that made them a member on, or an
    event about them. Received events are checked for loss, for an event id
    seen twice (the stream across all of the client's sockets must only grow,
    since each reconnect resumes from the highest id seen), for one message
    announced under two event ids, for order, for rooms the user is not in,
    and against the row's room and message.
    """
    from django.db.models import Max

    from rooms.events import Event
    from rooms.models import Membership

    assert client.start_cursor is not None, f"{client.name} never connected"
    user_id = client.account.user_id
    if through is None:
        through = Event.objects.aggregate(top=Max("id"))["top"] or 0
    window = Event.objects.filter(id__gt=client.start_cursor, id__lte=through)
    ending = window.filter(type__in=[Event.Type.MEMBER_LEFT, Event.Type.ROOM_DELETED])
    assert not ending.exists(), "the oracle models memberships that only begin; none may end in the window"
    joined = {
        room_id: joined_event_id or 0
        for room_id, joined_event_id in Membership.objects.filter(user_id=user_id).values_list(
            "room_id", "joined_event_id"
        )
    }
    rows = {
        event_id: (room_id, message_id, event_user_id, private)
        for event_id, room_id, message_id, event_user_id, private in window.values_list(
            "id", "room_id", "message_id", "user_id", "private"
        )
    }

    def visible(event_id: int) -> bool:
        room_id, _message, about, private = rows[event_id]
        if about == user_id:
            return True
        return not private and room_id in joined and event_id >= joined[room_id]

    expected = {event_id for event_id in rows if visible(event_id)}
    got = [event for event in client.events if event.event_id <= through]
    report = DeliveryReport(client=client.name, expected=len(expected), received=len(got))

    counts = Counter(event.event_id for event in got)
    report.duplicated = sorted(event_id for event_id, count in counts.items() if count > 1)
    previous = client.start_cursor
    for event in got:
        if event.event_id <= previous:
            report.out_of_order.append((previous, event.event_id))
        previous = max(previous, event.event_id)
    report.lost = sorted(expected - set(counts))
    unique = {event.event_id: event for event in got}
    for event_id, event in unique.items():
        if event_id not in expected:
            report.foreign.append(event_id)
            continue
        room_id, message_id, _about, _private = rows[event_id]
        if event.room != room_id or (event.message_id is not None and event.message_id != message_id):
            report.mismatched.append(event_id)
    report.foreign.sort()
    announced = Counter(event.message_id for event in unique.values() if event.type == "message.new")
    report.doubled_messages = sorted(message_id for message_id, count in announced.items() if count > 1)
    return report


def assert_delivered(clients: Iterable[ChatClient], *, through: int | None = None) -> list[DeliveryReport]:
    """Run the oracle for every client; fail with every client's report if any is wrong."""
    reports = [delivery_report(client, through=through) for client in clients]
    bad = [report for report in reports if not report.ok]
    assert not bad, "delivery broke its promise:\n" + "\n".join(str(report) for report in reports)
    return reports


def assert_one_row_per_client_id(clients: Iterable[ChatClient]) -> int:
    """Every send a client made exists exactly once in the database; return how many sends there were."""
    from django.db.models import Count

    from messaging.models import Message

    sent: dict[tuple[int, str], str] = {}
    for client in clients:
        for client_id in [*client.confirmed, *client.pending]:
            sent[(client.account.user_id, client_id)] = client.name
    rows = Counter(
        {
            (author, client_id): count
            for author, client_id, count in Message.objects.filter(client_id__in=[key[1] for key in sent])
            .values_list("author_id", "client_id")
            .annotate(count=Count("id"))
            .values_list("author_id", "client_id", "count")
        }
    )
    missing = [key for key in sent if rows[key] == 0]
    doubled = [key for key in sent if rows[key] > 1]
    assert not missing and not doubled, f"sends missing from the database: {missing[:10]}, doubled: {doubled[:10]}"
    return len(sent)


@contextlib.contextmanager
def timed(timings: dict[str, float], name: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        timings[name] = round(time.monotonic() - started, 2)
