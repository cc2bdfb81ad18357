"""Shared test fixtures: a small named cast, API clients, and event capture.

The cast: alice owns the public channel `lobby` and the private channel
`secret`; bob is a member of lobby; carol is an admin of lobby; mallory is
a user in no room; staff is a site moderator in no room.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

os.environ.setdefault("TESTING", "1")

from rest_framework.test import APIClient

PASSWORD = "correct horse battery staple"


def _services_required() -> bool:
    return os.environ.get("REQUIRE_SERVICES") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked `services` when PostgreSQL/Redis are not configured, unless REQUIRE_SERVICES=1."""
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
