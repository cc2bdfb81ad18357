"""Every API route × every kind of caller → the status docs/api.md gives (issue 5, item 5).

The routes come from the URL resolver, not from a list typed here: a route
added to chatproject/urls.py fails `test_every_route_is_in_the_matrix` until
its row is written below. Each row gives the statuses for the seven callers,
in CALLERS order, once for a public and once for a private channel whose
roles are laid out the same way:

    alice owner · carol admin · bob member (author of the message, with a 👍 on it)
    dave member (target of role changes, kicks and bans) · erin banned
    mallory outsider (in no room) · olivia member of another room · sam staff (in no room)

Each caller runs against the same fresh world: a savepoint is rolled back
after every request.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import transaction
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.test import APIClient

from accounts.models import User
from accounts.services import tokens_for
from conftest import PASSWORD
from files.services import thumbnail_store, upload_store
from messaging.models import Message
from messaging.services import message_post, reaction_add
from rooms import services as rooms
from rooms.models import Room

CALLERS = ("anonymous", "outsider", "other_member", "member", "admin", "owner", "staff")
VARIANTS = ("public", "private")


@dataclass(frozen=True)
class Row:
    """Expected statuses per caller (CALLERS order), on a public and on a private channel."""

    public: str
    private: str

    def expected(self, variant: str) -> dict[str, int]:
        codes = (self.public if variant == "public" else self.private).split()
        assert len(codes) == len(CALLERS), codes
        return dict(zip(CALLERS, map(int, codes), strict=True))


def same(codes: str) -> Row:
    """A route that does not depend on the room's visibility."""
    return Row(codes, codes)


# Callers:                     anon  outs  other memb  admin owner staff
MATRIX: dict[tuple[str, str], Row] = {
    # Accounts: open to anyone, or to any signed-in user.
    ("api:register", "POST"): same("201 201 201 201 201 201 201"),
    ("api:token", "POST"): same("200 200 200 200 200 200 200"),
    ("api:token-refresh", "POST"): same("200 200 200 200 200 200 200"),
    ("api:logout", "POST"): same("401 205 205 205 205 205 205"),
    ("api:me", "GET"): same("401 200 200 200 200 200 200"),
    ("api:me", "PATCH"): same("401 200 200 200 200 200 200"),
    ("api:users", "GET"): same("401 200 200 200 200 200 200"),
    ("api:user", "GET"): same("401 200 200 200 200 200 200"),
    ("api:presence", "GET"): same("401 200 200 200 200 200 200"),
    # Two-factor sign-in, passkeys and the security overview: the caller's own, nobody else's.
    # Nobody here has two-factor on: turning it off or renewing codes is a 409, confirming
    # with nothing begun a 400; the second step with a forged ticket is a 401 for anyone.
    ("api:token-mfa", "POST"): same("401 401 401 401 401 401 401"),
    ("api:mfa", "GET"): same("401 200 200 200 200 200 200"),
    ("api:mfa", "DELETE"): same("401 409 409 409 409 409 409"),
    ("api:mfa-totp", "POST"): same("401 200 200 200 200 200 200"),
    ("api:mfa-totp-confirm", "POST"): same("401 400 400 400 400 400 400"),
    ("api:mfa-recovery-codes", "POST"): same("401 409 409 409 409 409 409"),
    ("api:security", "GET"): same("401 200 200 200 200 200 200"),
    ("api:sign-in", "DELETE"): same("401 404 404 404 404 404 404"),
    ("api:passkey-options", "POST"): same("401 200 200 200 200 200 200"),
    ("api:passkey-reg-verify", "POST"): same("401 400 400 400 400 400 400"),
    ("api:passkeys", "GET"): same("401 200 200 200 200 200 200"),
    ("api:passkey", "PATCH"): same("401 404 404 404 404 404 404"),
    ("api:passkey", "DELETE"): same("401 404 404 404 404 404 404"),
    ("api:passkey-login-options", "POST"): same("200 200 200 200 200 200 200"),
    ("api:passkey-login-verify", "POST"): same("400 400 400 400 400 400 400"),
    # Rooms.
    ("api:rooms", "GET"): same("401 200 200 200 200 200 200"),
    ("api:rooms", "POST"): same("401 201 201 201 201 201 201"),
    ("api:rooms-public", "GET"): same("401 200 200 200 200 200 200"),
    ("api:rooms-read", "POST"): same("401 200 200 200 200 200 200"),
    ("api:dms", "POST"): same("401 201 201 201 201 201 201"),
    ("api:room", "GET"): Row(
        "401 200 200 200 200 200 200",
        "401 404 404 200 200 200 404",
    ),
    ("api:room", "PATCH"): Row(
        "401 403 403 403 200 200 403",
        "401 404 404 403 200 200 404",
    ),
    ("api:room", "DELETE"): Row(
        "401 403 403 403 403 204 403",
        "401 404 404 403 403 204 404",
    ),
    ("api:room-join", "POST"): Row(
        "401 200 200 200 200 200 200",
        "401 404 404 200 200 200 404",
    ),
    ("api:room-leave", "POST"): Row(
        "401 403 403 204 204 204 403",
        "401 404 404 204 204 204 404",
    ),
    ("api:room-members", "GET"): Row(
        "401 403 403 200 200 200 403",
        "401 404 404 200 200 200 404",
    ),
    ("api:room-members", "POST"): Row(
        "401 403 403 403 201 201 403",
        "401 404 404 403 201 201 404",
    ),
    ("api:room-member", "PATCH"): Row(
        "401 403 403 403 403 200 403",
        "401 404 404 403 403 200 404",
    ),
    ("api:room-member", "DELETE"): Row(
        "401 403 403 403 204 204 403",
        "401 404 404 403 204 204 404",
    ),
    ("api:room-bans", "GET"): Row(
        "401 403 403 403 200 200 403",
        "401 404 404 403 200 200 404",
    ),
    ("api:room-bans", "POST"): Row(
        "401 403 403 403 201 201 403",
        "401 404 404 403 201 201 404",
    ),
    ("api:room-ban", "DELETE"): Row(
        "401 403 403 403 204 204 403",
        "401 404 404 403 204 204 404",
    ),
    ("api:room-read", "POST"): Row(
        "401 403 403 204 204 204 403",
        "401 404 404 204 204 204 404",
    ),
    # Messages. bob (member) wrote the message and put the 👍 on it.
    ("api:room-messages", "GET"): Row(
        "401 403 403 200 200 200 403",
        "401 404 404 200 200 200 404",
    ),
    ("api:room-messages", "POST"): Row(
        "401 403 403 201 201 201 403",
        "401 404 404 201 201 201 404",
    ),
    ("api:message", "GET"): Row(
        "401 403 403 200 200 200 403",
        "401 404 404 200 200 200 404",
    ),
    ("api:message", "PATCH"): Row(
        "401 403 403 200 403 403 403",
        "401 404 404 200 403 403 404",
    ),
    # The author, the room's owners and admins, and staff anywhere.
    ("api:message", "DELETE"): Row(
        "401 403 403 204 204 204 204",
        "401 404 404 204 204 204 204",
    ),
    ("api:message-edits", "GET"): Row(
        "401 403 403 200 200 200 403",
        "401 404 404 200 200 200 404",
    ),
    ("api:message-reactions", "POST"): Row(
        "401 403 403 201 201 201 403",
        "401 404 404 201 201 201 404",
    ),
    # Only bob has a 👍 to take back; for the other members there is none (404).
    ("api:message-reaction", "DELETE"): Row(
        "401 403 403 204 404 404 403",
        "401 404 404 204 404 404 404",
    ),
    # bob cannot report his own message (400).
    ("api:message-report", "POST"): Row(
        "401 403 403 400 201 201 403",
        "401 404 404 400 201 201 404",
    ),
    ("api:search-messages", "GET"): same("401 200 200 200 200 200 200"),
    # Files: uploads like posting; a file (bob's, on his message) only for the room's members, 404 for all others.
    ("api:room-uploads", "POST"): Row(
        "401 403 403 201 201 201 403",
        "401 404 404 201 201 201 404",
    ),
    ("api:file", "GET"): same("401 404 404 200 200 200 404"),
    ("api:file-thumbnail", "GET"): same("401 404 404 200 200 200 404"),
    # Threads and pins: members of the message's room; pinning in a channel is for owners and admins.
    ("api:message-thread", "GET"): Row(
        "401 403 403 200 200 200 403",
        "401 404 404 200 200 200 404",
    ),
    ("api:message-thread-read", "POST"): Row(
        "401 403 403 204 204 204 403",
        "401 404 404 204 204 204 404",
    ),
    ("api:message-follow", "PUT"): Row(
        "401 403 403 204 204 204 403",
        "401 404 404 204 204 204 404",
    ),
    ("api:message-follow", "DELETE"): Row(
        "401 403 403 204 204 204 403",
        "401 404 404 204 204 204 404",
    ),
    ("api:threads", "GET"): same("401 200 200 200 200 200 200"),
    ("api:message-pin", "POST"): Row(
        "401 403 403 403 204 204 403",
        "401 404 404 403 204 204 404",
    ),
    ("api:message-pin", "DELETE"): Row(
        "401 403 403 403 204 204 403",
        "401 404 404 403 204 204 404",
    ),
    ("api:room-pins", "GET"): Row(
        "401 403 403 200 200 200 403",
        "401 404 404 200 200 200 404",
    ),
    # Notifications: each person's own preferences and browsers; a room's setting is its members'.
    ("api:password-reset", "POST"): same("202 202 202 202 202 202 202"),
    ("api:password-reset-confirm", "POST"): same("400 400 400 400 400 400 400"),  # the token is no good
    ("api:preferences", "GET"): same("401 200 200 200 200 200 200"),
    ("api:preferences", "PATCH"): same("401 200 200 200 200 200 200"),
    ("api:room-notifications", "GET"): Row(
        "401 403 403 200 200 200 403",
        "401 404 404 200 200 200 404",
    ),
    ("api:room-notifications", "PATCH"): Row(
        "401 403 403 200 200 200 403",
        "401 404 404 200 200 200 404",
    ),
    ("api:push-vapid-key", "GET"): same("401 200 200 200 200 200 200"),
    ("api:push-subscriptions", "POST"): same("401 201 201 201 201 201 201"),
    ("api:push-subscriptions", "DELETE"): same("401 204 204 204 204 204 204"),
    ("api:push-test", "POST"): same("401 202 202 202 202 202 202"),
    # The OpenAPI document and its browsable docs are public.
    ("schema", "GET"): same("200 200 200 200 200 200 200"),
    ("docs", "GET"): same("200 200 200 200 200 200 200"),
}

# Routes outside the API, each covered elsewhere; listed so that a new one is a conscious choice.
NOT_API = {
    "healthz": "core/tests/test_health.py",
    "readyz": "core/tests/test_health.py",
    "metrics": "the operations tests (token or address allow-list)",
    "chat": "web UI page (web/tests/browser/, test_headers.py)",
    "chat-room": "web UI page",
    "signup": "web UI page",
    "login": "web UI page (form log-in, rate limited)",
    "logout": "web UI page",
    "password-change": "web UI page",
    "settings": "web UI page",
    "profile": "web UI page",
    "two-factor": "web UI page (accounts/tests/test_two_factor.py)",
    "login-code": "web UI page, the log-in's second step (accounts/tests/test_two_factor.py)",
    "login-passkey": "web UI log-in with a passkey (accounts/tests/test_passkeys.py)",
    "oidc-authenticate": "single sign-on redirect (accounts/tests/test_sso.py)",
    "oidc-callback": "single sign-on callback (accounts/tests/test_sso.py)",
    "service-worker": "the service worker script (notifications/tests/test_push_api.py)",
    "email-unsubscribe": "an email's signed unsubscribe link (notifications/tests/test_email_notifications.py)",
    "password-reset-page": "web UI page (accounts/tests/test_email_links.py)",
    "password-reset-confirm-page": "web UI page behind an emailed token (accounts/tests/test_email_links.py)",
    "email-verify": "an emailed confirmation link (accounts/tests/test_email_links.py)",
}


# --- The world --------------------------------------------------------------------------------


@dataclass
class World:
    users: dict[str, User]
    rooms: dict[str, Room]
    messages: dict[str, Message]
    files: dict[str, int]
    banned: User
    target: User
    newcomer: User


def _make(username: str, **extra: Any) -> User:
    return User.objects.create_user(username=username, email=f"{username}@example.com", password=PASSWORD, **extra)


@pytest.fixture
def world(db: None) -> World:
    people = {
        "owner": _make("alice"),
        "admin": _make("carol"),
        "member": _make("bob"),
        "outsider": _make("mallory"),
        "other_member": _make("olivia"),
        "staff": _make("sam", is_staff=True),
    }
    target, banned, newcomer, host = _make("dave"), _make("erin"), _make("nina"), _make("oscar")
    elsewhere = rooms.room_create(creator=host, name="Elsewhere")
    rooms.room_join(user=people["other_member"], room=elsewhere)
    made: dict[str, Room] = {}
    messages: dict[str, Message] = {}
    files: dict[str, int] = {}
    for variant in VARIANTS:
        room = rooms.room_create(creator=people["owner"], name=f"Room {variant}", visibility=variant)
        for user in (people["admin"], people["member"], target, banned):
            rooms.member_add(actor=people["owner"], room=room, user_id=user.pk)
        rooms.member_set_role(actor=people["owner"], room=room, user_id=people["admin"].pk, role="admin")
        rooms.member_ban(actor=people["owner"], room=room, user_id=banned.pk, reason="matrix")
        image = upload_store(room_id=room.pk, uploader=people["member"], upload=_png(), name="m.png", size=len(PNG))
        message, _ = message_post(room=room, author=people["member"], body="hello matrix", attachments=[image.pk])
        thumbnail_store(image.pk)
        reaction_add(user=people["member"], message=message, emoji="👍")
        made[variant], messages[variant], files[variant] = room, message, image.pk
    return World(
        users=people, rooms=made, messages=messages, files=files, banned=banned, target=target, newcomer=newcomer
    )


PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x00\x00\x00\x00:~\x9bU"
    b"\x00\x00\x00\nIDATx\x9cc`\x00\x00\x00\x02\x00\x01H\xaf\xa4q\x00\x00\x00\x00IEND\xaeB`\x82"
)


def _png() -> io.BytesIO:
    handle = io.BytesIO(PNG)
    handle.name = "matrix.png"
    return handle


# --- Requests -----------------------------------------------------------------------------------

Body = dict[str, Any] | Callable[[World, str, User | None], dict[str, Any]] | None


def _own_refresh(world: World, variant: str, caller: User | None) -> dict[str, Any]:
    return {"refresh": tokens_for(caller)["refresh"]} if caller is not None else {"refresh": "x"}


BODIES: dict[tuple[str, str], Body] = {
    ("api:register", "POST"): lambda w, v, c: {
        "username": f"new_{c.username if c else 'anon'}",
        "email": f"new_{c.username if c else 'anon'}@example.com",
        "password": PASSWORD,
    },
    ("api:token", "POST"): {"username": "bob", "password": PASSWORD},
    ("api:token-refresh", "POST"): lambda w, v, c: {"refresh": tokens_for(w.users["member"])["refresh"]},
    ("api:logout", "POST"): _own_refresh,
    ("api:me", "PATCH"): {"display_name": "Renamed"},
    ("api:rooms", "POST"): {"name": "Brand new"},
    ("api:dms", "POST"): lambda w, v, c: {"users": [w.target.pk]},
    ("api:room", "PATCH"): {"topic": "New topic"},
    ("api:room-members", "POST"): lambda w, v, c: {"user": w.newcomer.pk},
    ("api:room-member", "PATCH"): {"role": "admin"},
    ("api:room-bans", "POST"): lambda w, v, c: {"user": w.target.pk, "reason": "matrix"},
    ("api:room-read", "POST"): lambda w, v, c: {"message_id": w.messages[v].pk},
    ("api:room-messages", "POST"): {"body": "posted by the matrix"},
    ("api:message", "PATCH"): {"body": "edited by the matrix"},
    ("api:message-reactions", "POST"): {"emoji": "🎉"},
    ("api:message-report", "POST"): {"reason": "matrix"},
    ("api:token-mfa", "POST"): {"mfa_token": "forged", "code": "123456"},
    ("api:mfa", "DELETE"): {"code": "123456"},
    ("api:mfa-totp-confirm", "POST"): {"code": "123456"},
    ("api:mfa-recovery-codes", "POST"): {"code": "123456"},
    ("api:passkey-reg-verify", "POST"): {"credential": {}, "name": "matrix"},
    ("api:passkey", "PATCH"): {"name": "matrix"},
    ("api:passkey-login-verify", "POST"): {"credential": {}},
    ("api:room-uploads", "POST"): lambda w, v, c: {"file": _png()},
    ("api:message-thread-read", "POST"): lambda w, v, c: {"message_id": w.messages[v].pk},
    ("api:password-reset", "POST"): {"email": "bob@example.com"},
    ("api:password-reset-confirm", "POST"): {"token": "not-a-token", "password": PASSWORD},
    ("api:preferences", "PATCH"): {"email": False},
    ("api:room-notifications", "PATCH"): {"level": "all"},
    ("api:push-subscriptions", "POST"): lambda w, v, c: _push_subscription(c),
    ("api:push-subscriptions", "DELETE"): {"endpoint": "https://push.example.com/gone"},
}
# Sent as multipart form data; everything else as JSON.
MULTIPART = {("api:room-uploads", "POST")}


def _push_subscription(caller: User | None) -> dict[str, Any]:
    import base64
    import os

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    name = caller.username if caller else "anon"
    return {
        "endpoint": f"https://push.example.com/{name}",
        "keys": {
            "p256dh": base64.urlsafe_b64encode(point).rstrip(b"=").decode(),
            "auth": base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode(),
        },
    }


@pytest.fixture(autouse=True)
def _push_configured(settings: Any) -> None:
    """Web Push keys, as a production server with push has them."""
    from notifications.push import generate_vapid_keys

    settings.VAPID_PRIVATE_KEY, settings.VAPID_PUBLIC_KEY = generate_vapid_keys()


QUERIES: dict[tuple[str, str], Callable[[World], dict[str, str]]] = {
    ("api:search-messages", "GET"): lambda w: {"q": "hello"},
    ("api:presence", "GET"): lambda w: {"users": f"{w.users['member'].pk},{w.target.pk}"},
}


def _path_kwargs(name: str, world: World, variant: str, params: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for param in params:
        if param == "room_id":
            values[param] = world.rooms[variant].pk
        elif param == "message_id":
            values[param] = world.messages[variant].pk
        elif param == "sign_in":
            values[param] = uuid.UUID(int=1)  # nobody's sign-in
        elif param == "passkey_id":
            values[param] = 1  # nobody has a passkey in this world
        elif param == "file_id":
            values[param] = world.files[variant]
        elif param == "emoji":
            values[param] = "👍"
        elif param == "user_id":
            # The member being changed or kicked, the banned user, or any user to look at.
            values[param] = {"api:room-ban": world.banned, "api:room-member": world.target}.get(
                name, world.users["member"]
            ).pk
        else:
            raise AssertionError(f"the matrix does not know how to fill <{param}> of {name}")
    return values


# --- Routes from the resolver ----------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    name: str
    methods: tuple[str, ...]
    params: tuple[str, ...]


def _walk(patterns: list[Any], namespace: str = "") -> Iterator[tuple[str, Any, list[str]]]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            if entry.app_name == "admin":
                continue  # the Django admin: staff only, tested with the moderation actions
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _walk(entry.url_patterns, inner)
        elif isinstance(entry, URLPattern):
            if entry.name is None:
                continue  # the JSON 404 catch-all under /api/
            yield f"{namespace}{entry.name}", entry.callback, list(entry.pattern.converters)


def resolver_routes() -> dict[str, Route]:
    routes = {}
    for name, callback, params in _walk(get_resolver().url_patterns):
        view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
        if view_class is None:
            methods: tuple[str, ...] = ("GET",)
        else:
            methods = tuple(
                method.upper()
                for method in view_class.http_method_names
                if method not in ("options", "head", "trace") and hasattr(view_class, method)
            )
        routes[name] = Route(name=name, methods=methods, params=tuple(params))
    return routes


def api_operations() -> list[tuple[str, str]]:
    routes = resolver_routes()
    return sorted((name, method) for name, route in routes.items() if name not in NOT_API for method in route.methods)


def test_every_route_is_in_the_matrix() -> None:
    operations = set(api_operations())
    missing = sorted(operations - set(MATRIX))
    stale = sorted(set(MATRIX) - operations)
    assert not missing, f"routes without a row in MATRIX (add the expected statuses): {missing}"
    assert not stale, f"rows in MATRIX for routes that no longer exist: {stale}"


def test_the_resolver_walk_finds_the_api() -> None:
    # Guards the guard: a broken walk would make the completeness test pass vacuously.
    routes = resolver_routes()
    assert {"api:room", "api:message", "api:token", "schema"} <= set(routes)
    assert routes["api:room"].methods == ("GET", "PATCH", "DELETE")
    assert routes["api:room-member"].params == ("room_id", "user_id")


def _client(caller: User | None) -> APIClient:
    client = APIClient()
    if caller is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_for(caller)['access']}")
    return client


def _call(world: World, name: str, method: str, variant: str, caller_kind: str) -> int:
    route = resolver_routes()[name]
    caller = None if caller_kind == "anonymous" else world.users[caller_kind]
    url = reverse(name, kwargs=_path_kwargs(name, world, variant, list(route.params)))
    body = BODIES.get((name, method))
    if callable(body):
        body = body(world, variant, caller)
    query = QUERIES.get((name, method), lambda w: {})(world)
    client = _client(caller)
    kind = "multipart" if (name, method) in MULTIPART else "json"
    response = client.get(url, query) if method == "GET" else getattr(client, method.lower())(url, body, format=kind)
    return response.status_code


@pytest.mark.parametrize(("name", "method"), api_operations(), ids=lambda value: str(value))
def test_route_answers_each_caller_as_the_matrix_says(world: World, settings: Any, name: str, method: str) -> None:
    if (name, method) not in MATRIX:
        pytest.fail(f"{method} {name} has no row in MATRIX")
    mismatches = []
    for variant in VARIANTS:
        for caller_kind, expected in MATRIX[(name, method)].expected(variant).items():
            # Each request starts from the same world and with fresh rate-limit counters.
            settings.RATELIMIT_CACHE_PREFIX = f"rl:matrix:{name}:{method}:{variant}:{caller_kind}:"
            savepoint = transaction.savepoint_create()
            try:
                status = _call(world, name, method, variant, caller_kind)
            finally:
                transaction.savepoint_rollback(savepoint)
            if status != expected:
                mismatches.append(f"{variant:8} {caller_kind:13} expected {expected}, got {status}")
    assert not mismatches, f"{method} {name}:\n" + "\n".join(mismatches)


def test_a_private_room_looks_exactly_like_a_missing_one(world: World) -> None:
    """The 404 an outsider gets for a private room is the 404 for an id that does not exist."""
    client = _client(world.users["outsider"])
    private = world.rooms["private"].pk
    missing = Room.objects.order_by("-pk").first().pk + 1000  # type: ignore[union-attr]
    for path in ("rooms/{}/", "rooms/{}/messages/", "rooms/{}/members/"):
        seen = client.get(f"/api/v1/{path.format(private)}")
        unseen = client.get(f"/api/v1/{path.format(missing)}")
        assert (seen.status_code, seen.json()) == (unseen.status_code, unseen.json())
