"""Web Push: VAPID keys, subscriptions, and the jobs that post encrypted payloads to push services.

Each push is its own job (`push_deliver`), enqueued under a key unique in
the job table (`push:<notification>:<subscription>`), so deciding to push
twice writes one job. The job posts an aes128gcm-encrypted payload (RFC
8291) signed with VAPID (RFC 8292) through pywebpush, and then:

- 2xx: done;
- 404 or 410: the subscription is gone, and is deleted;
- 429: tried again after its `Retry-After` (at most MAX_DEFERRALS times);
- 5xx, a timeout, a refused connection: raised, so the queue retries it
  with backoff and, when the attempts are spent, leaves it dead (counted
  in `chat_job_attempts_total{outcome="dead"}`);
- any other 4xx: given up at once (retrying cannot help).

A worker killed after the post and before recording success posts again:
the `Topic` header (RFC 8030 §5.4) makes the push service replace an
undelivered copy, and the service worker shows one notification per
message tag, so the person still sees one.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.db import transaction
from django.tasks import default_task_backend
from django.utils import timezone
from py_vapid import Vapid02
from pywebpush import WebPusher

import jobs
from core.errors import Invalid, NotFound
from notifications.models import PushSubscription

if TYPE_CHECKING:
    from accounts.models import User
    from notifications.models import Notification

logger = logging.getLogger(__name__)

BODY_MAX = 200
PUSH_TTL_SECONDS = 24 * 3600
MAX_DEFERRALS = 5
RETRY_AFTER_MAX = timedelta(hours=1)


# --- Keys --------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def generate_vapid_keys() -> tuple[str, str]:
    """Return a new (private, public) VAPID key pair as URL-safe base64 of the raw keys."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_numbers().private_value.to_bytes(32, "big")
    public = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return _b64(private), _b64(public)


class PushNotConfigured(NotFound):
    """Web Push is off: production without VAPID keys (there is no key to give: 404, not a server error)."""


def vapid_keys() -> tuple[str, str]:
    """Return (private, public): from the settings, or with DEBUG on a pair kept in VAPID_KEY_FILE."""
    if settings.VAPID_PRIVATE_KEY and settings.VAPID_PUBLIC_KEY:
        return settings.VAPID_PRIVATE_KEY, settings.VAPID_PUBLIC_KEY
    if not settings.DEBUG:
        raise PushNotConfigured("Web Push is not configured on this server (VAPID_PRIVATE_KEY, VAPID_PUBLIC_KEY).")
    path = settings.VAPID_KEY_FILE
    if not path.exists():
        private, public = generate_vapid_keys()
        path.write_text(json.dumps({"private": private, "public": public}))
        path.chmod(0o600)
    stored = json.loads(path.read_text())
    return stored["private"], stored["public"]


# --- Subscriptions -------------------------------------------------------------------------


def _check_keys(p256dh: str, auth: str) -> None:
    try:
        point = _unb64(p256dh)
        secret = _unb64(auth)
    except ValueError as exc:
        raise Invalid({"keys": "p256dh and auth must be URL-safe base64."}) from exc
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError as exc:
        raise Invalid({"keys": {"p256dh": "Not an uncompressed P-256 public key."}}) from exc
    if len(point) != 65 or len(secret) != 16:
        raise Invalid({"keys": "p256dh must be a 65-byte point and auth 16 bytes."})


def _check_endpoint(endpoint: str) -> None:
    parts = urlsplit(endpoint)
    allowed = ("https", "http") if settings.PUSH_ALLOW_HTTP else ("https",)
    if parts.scheme not in allowed or not parts.hostname:
        raise Invalid({"endpoint": "A push service endpoint must be an https:// URL."})


def subscription_add(*, user: User, endpoint: str, p256dh: str, auth: str) -> tuple[PushSubscription, bool]:
    """Subscribe a browser; return (subscription, created).

    A known endpoint is updated and now belongs to `user`: a browser has one
    subscription, whoever signs in on it last.
    """
    _check_endpoint(endpoint)
    _check_keys(p256dh, auth)
    with transaction.atomic():
        subscription, created = PushSubscription.objects.select_for_update().get_or_create(
            endpoint=endpoint, defaults={"user": user, "p256dh": p256dh, "auth": auth}
        )
        if not created:
            subscription.user = user
            subscription.p256dh = p256dh
            subscription.auth = auth
            subscription.save(update_fields=["user", "p256dh", "auth"])
    return subscription, created


def subscription_remove(*, user: User, endpoint: str) -> bool:
    """Unsubscribe one of the user's browsers; return whether there was such a subscription."""
    deleted, _ = PushSubscription.objects.filter(user=user, endpoint=endpoint).delete()
    return bool(deleted)


# --- Payloads and jobs -----------------------------------------------------------------------


def message_payload(notification: Notification) -> dict[str, Any]:
    """The push a person gets for a message: where, who, the start of the text, and a link."""
    message = notification.message
    room = message.room
    author = message.author
    sender = author.display_name or author.username
    title = sender if room.is_direct else f"{sender} in #{room.name}"
    body = message.body if len(message.body) <= BODY_MAX else message.body[: BODY_MAX - 1] + "…"
    return {
        "type": "message",
        "room": room.pk,
        "message_id": message.pk,
        "title": title,
        "body": body,
        "url": f"/rooms/{room.pk}/?message={message.pk}",  # the permalink: opens at it, a reply in its thread
    }


def _enqueue_once(key: str, *args: Any) -> None:
    backend = default_task_backend
    backend.enqueue_once(push_deliver, key, args)  # type: ignore[attr-defined]


def message_pushes_enqueue(notifications: list[Notification]) -> int:
    """Queue each notification's push to each of its person's browsers (once each, whatever retries).

    The job key `push:<notification>:<subscription>` is unique in the job
    table, so a second call for the same notifications writes nothing.
    Returns how many pushes were queued.
    """
    by_user: dict[int, list[int]] = {}
    user_ids = {n.user_id for n in notifications}
    for user_id, subscription_id in PushSubscription.objects.filter(user_id__in=user_ids).values_list("user_id", "pk"):
        by_user.setdefault(user_id, []).append(subscription_id)
    queued = 0
    for notification in notifications:
        subscriptions = by_user.get(notification.user_id, [])
        if not subscriptions:
            continue
        payload = message_payload(notification)
        for subscription_id in subscriptions:
            _enqueue_once(f"push:{notification.pk}:{subscription_id}", subscription_id, payload, 0)
            queued += 1
    return queued


def message_push_enqueue(notification: Notification) -> int:
    """Queue one notification's pushes (`message_pushes_enqueue`); return how many."""
    return message_pushes_enqueue([notification])


def dismiss_enqueue(*, user_id: int, room_id: int, message_id: int) -> None:
    """Queue a `dismiss` push to each of the person's browsers, so they close the message's notification."""
    payload = {"type": "dismiss", "room": room_id, "message_id": message_id}
    for subscription_id in PushSubscription.objects.filter(user_id=user_id).values_list("pk", flat=True):
        _enqueue_once(f"dismiss:{message_id}:{subscription_id}", subscription_id, payload, 0)


def trial_push_enqueue(*, user: User) -> int:
    """Queue one test push to each of the user's browsers; return how many."""
    payload = {"type": "test", "title": "Test notification", "body": "Notifications reach this browser.", "url": "/"}
    subscriptions = list(PushSubscription.objects.filter(user=user).values_list("pk", flat=True))
    for subscription_id in subscriptions:
        push_deliver.enqueue(subscription_id, payload, 0)
    return len(subscriptions)


def _retry_after(response: requests.Response) -> timedelta:
    """The wait a 429 asks for (seconds or an HTTP date), within [1 s, RETRY_AFTER_MAX]; 60 s if absent."""
    value = response.headers.get("Retry-After", "").strip()
    wait = timedelta(seconds=60)
    if value.isdigit():
        wait = timedelta(seconds=int(value))
    elif value:
        with contextlib.suppress(TypeError, ValueError):
            wait = parsedate_to_datetime(value) - timezone.now()
    return min(max(wait, timedelta(seconds=1)), RETRY_AFTER_MAX)


class PushServiceError(Exception):
    """The push service failed in a way worth retrying (5xx, timeout, refused connection)."""


@jobs.task(max_attempts=6, retry_delay=timedelta(seconds=30), retry_delay_max=timedelta(minutes=30))
def push_deliver(subscription_id: int, payload: dict[str, Any], deferrals: int) -> str:
    """Post one encrypted, signed push to one subscription; return what came of it."""
    subscription = PushSubscription.objects.filter(pk=subscription_id).first()
    if subscription is None:
        return "unsubscribed"
    try:
        _check_endpoint(subscription.endpoint)
    except Invalid as exc:
        raise jobs.PermanentError("endpoint not allowed") from exc
    try:
        private_key, _public = vapid_keys()
    except PushNotConfigured as exc:
        raise jobs.PermanentError(str(exc)) from exc
    parts = urlsplit(subscription.endpoint)
    claims = {"sub": settings.VAPID_SUBJECT, "aud": f"{parts.scheme}://{parts.netloc}"}
    headers = Vapid02.from_raw(private_key.encode()).sign(claims)
    headers["Urgency"] = "normal" if payload["type"] == "dismiss" else "high"
    if "message_id" in payload:
        headers["Topic"] = f"m{payload['message_id']}"
    pusher = WebPusher(
        {"endpoint": subscription.endpoint, "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth}}
    )
    body = json.dumps(payload, separators=(",", ":")).encode()
    try:
        response = pusher.send(
            body, headers, ttl=PUSH_TTL_SECONDS, content_encoding="aes128gcm", timeout=settings.PUSH_TIMEOUT_SECONDS
        )
    except requests.RequestException as exc:
        raise PushServiceError(f"push service unreachable: {exc.__class__.__name__}") from exc
    assert isinstance(response, requests.Response)
    code = response.status_code
    if 200 <= code < 300:
        PushSubscription.objects.filter(pk=subscription_id).update(last_success_at=timezone.now())
        return "sent"
    if code in (404, 410):
        PushSubscription.objects.filter(pk=subscription_id).delete()
        return "gone"
    if code == 429:
        if deferrals >= MAX_DEFERRALS:
            raise PushServiceError("push service kept answering 429")
        push_deliver.using(run_after=timezone.now() + _retry_after(response)).enqueue(
            subscription_id, payload, deferrals + 1
        )
        return "deferred"
    if code >= 500:
        raise PushServiceError(f"push service answered {code}")
    raise jobs.PermanentError(f"push service refused the push with {code}")
