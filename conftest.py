"""Shared test fixtures: a small named cast, API clients, and event capture.

The cast: alice owns the public channel `lobby` and the private channel
`secret`; bob is a member of lobby; carol is an admin of lobby; mallory is
a user in no room; staff is a site moderator in no room.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

os.environ.setdefault("TESTING", "1")

from rest_framework.test import APIClient

PASSWORD = "correct horse battery staple"


# Fixtures of the real-server tests (several Daphne processes, kills, restarts,
# timing bounds): the tests using them are `serial`.
SERIAL_FIXTURES = frozenset({"pool", "pool_on_own_redis", "own_redis", "pool_on_own_postgres", "own_postgres"})


def _services_required() -> bool:
    return os.environ.get("REQUIRE_SERVICES") == "1"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--serial",
        choices=("include", "skip", "only"),
        default="include",
        help="tests marked serial (real servers, kills, timing bounds): run them too, leave them out, or only them",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "serial: starts servers, kills processes or bounds a timing; `make test` runs these alone, after the rest",
    )
    _refuse_connections_off_this_machine()


def _refuse_connections_off_this_machine() -> None:
    """Make a test that reaches past loopback fail loudly: the suite asks no index, service or site outside."""
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return
        host = address[0]
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise RuntimeError(f"tests connect only to loopback addresses, not {host}")

    def guarded_connect(sock: socket.socket, address: Any) -> None:
        check(sock, address)
        connect(sock, address)

    def guarded_connect_ex(sock: socket.socket, address: Any) -> int:
        check(sock, address)
        return connect_ex(sock, address)

    socket.socket.connect = guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign]


# Before pytest-xdist reads the xdist_group markers.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Sort tests into `make test`'s two runs; skip `services` tests without PostgreSQL/Redis.

    Real-server tests are `serial`, kept or left out per --serial. The browser
    tests share one server and one Chromium, so under pytest-xdist
    (--dist loadgroup) they all go to the same worker. A missing service is a
    failure instead of a skip with REQUIRE_SERVICES=1.
    """
    for item in items:
        if SERIAL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.serial)
        if item.get_closest_marker("browser") is not None:
            item.add_marker(pytest.mark.xdist_group("browser"))
    choice = config.getoption("serial")
    if choice != "include":
        keep: list[pytest.Item] = []
        drop: list[pytest.Item] = []
        for item in items:
            (keep if (item.get_closest_marker("serial") is not None) == (choice == "only") else drop).append(item)
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    have_postgres = bool(os.environ.get("DATABASE_URL"))
    have_redis = bool(os.environ.get("REDIS_URL"))
    for item in items:
        marker = item.get_closest_marker("services")
        if marker is None:
            continue
        needed = set(marker.args or ("postgres", "redis"))
        missing = [
            name
            for name, present in (("postgres", have_postgres), ("redis", have_redis))
            if name in needed and not present
        ]
        if missing and not _services_required():
            item.add_marker(pytest.mark.skip(reason=f"needs {', '.join(missing)} (set DATABASE_URL / REDIS_URL)"))
        elif missing:
            item.add_marker(
                pytest.mark.xfail(
                    reason=f"REQUIRE_SERVICES=1 but {', '.join(missing)} not configured", strict=True, run=False
                )
            )


@pytest.fixture
def make_user(db: None) -> Callable[..., object]:
    from accounts.models import User

    def make(username: str, *, display_name: str = "", is_staff: bool = False, **extra: object) -> User:
        return User.objects.create_user(
            username=username,
            email=f"{username}@example.com",
            password=PASSWORD,
            display_name=display_name,
            is_staff=is_staff,
            **extra,
        )

    return make


@pytest.fixture
def alice(make_user):  # type: ignore[no-untyped-def]
    return make_user("alice", display_name="Alice")


@pytest.fixture
def bob(make_user):  # type: ignore[no-untyped-def]
    return make_user("bob", display_name="Bob")


@pytest.fixture
def carol(make_user):  # type: ignore[no-untyped-def]
    return make_user("carol", display_name="Carol")


@pytest.fixture
def mallory(make_user):  # type: ignore[no-untyped-def]
    return make_user("mallory", display_name="Mallory")


@pytest.fixture
def staff(make_user):  # type: ignore[no-untyped-def]
    return make_user("moderator", display_name="Mod", is_staff=True)


@pytest.fixture
def lobby(alice, bob, carol):  # type: ignore[no-untyped-def]
    """Public channel: alice owner, carol admin, bob member."""
    from rooms import services

    room = services.room_create(creator=alice, name="Lobby", topic="Say hi")
    services.room_join(user=bob, room=room)
    services.member_add(actor=alice, room=room, user_id=carol.pk)
    services.member_set_role(actor=alice, room=room, user_id=carol.pk, role="admin")
    return room


@pytest.fixture
def secret(alice):  # type: ignore[no-untyped-def]
    """Private channel with alice as its only member and owner."""
    from rooms import services

    return services.room_create(creator=alice, name="Secret", visibility="private")


@pytest.fixture
def client_for() -> Callable[[object], APIClient]:
    """Return an API client authenticated as a user with a real JWT access token."""

    def make(user: object) -> APIClient:
        from accounts.services import tokens_for

        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_for(user)['access']}")  # type: ignore[arg-type]
        return client

    return make


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture
def capture_events(django_capture_on_commit_callbacks):  # type: ignore[no-untyped-def]
    """Run on-commit callbacks and record each event published, as `with capture_events() as events:`."""
    from core import publish

    @contextmanager
    def capture() -> Iterator[list[object]]:
        published: list[object] = []
        stop = publish.subscribe(published.append)
        try:
            with django_capture_on_commit_callbacks(execute=True):
                yield published
        finally:
            stop()

    return capture


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):  # type: ignore[no-untyped-def]
    """Hash test passwords with MD5.

    pytest-django loads the settings before this module sets TESTING, so the
    settings' own switch away from Argon2 (tens of milliseconds a hash) never
    fires under pytest.
    """
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _files_in_a_temporary_folder(settings, tmp_path_factory):  # type: ignore[no-untyped-def]
    """Uploads of every test go to a folder of their own, never the checkout's media/."""
    storages = dict(settings.STORAGES)
    if storages["files"]["BACKEND"].endswith("FileSystemStorage"):
        location = tmp_path_factory.mktemp("media")
        settings.MEDIA_ROOT = location
        storages["files"] = {**storages["files"], "OPTIONS": {"location": str(location), "base_url": None}}
        settings.STORAGES = storages


@pytest.fixture(autouse=True)
def _fresh_rate_limits(settings):  # type: ignore[no-untyped-def]
    """Start every test's rate-limit counters from zero (limits stay on: RATELIMIT_ENABLE is untouched).

    A new key prefix instead of clearing the cache: with Redis, clearing would
    flush the channel layer of tests running alongside.
    """
    import uuid

    settings.RATELIMIT_CACHE_PREFIX = f"rl:{uuid.uuid4().hex[:12]}:"


@pytest.fixture(autouse=True)
def _fresh_membership_cache(settings):  # type: ignore[no-untyped-def]
    """Give every test membership-cache keys of its own: ids repeat between tests, memberships do not."""
    import uuid

    settings.MEMBERSHIP_CACHE_PREFIX = f"member:{uuid.uuid4().hex[:12]}:"
