"""Rate limits: django-ratelimit on the password and token routes, DRF throttles on the rest, and
one sending budget per user.

Every counter lives in the default cache (local memory, or Redis with
REDIS_URL, shared by every process). `RATELIMIT_ENABLE=0` turns all of them
off, for load tests only. A refused request gets 429 with `Retry-After`.

The sending budget (`send_budget_spend`, settings.USER_SEND_RATE) counts
what a user posts and the typing notices they send, over REST and every one
of their sockets together: a per-socket limit alone let 60 sockets of one
account store 900 messages in 14 seconds.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django_ratelimit.core import get_usage
from rest_framework.exceptions import Throttled
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

from core.text import fold

logger = logging.getLogger(__name__)


class RateLimited(Throttled):
    """Too many attempts; DRF turns this into 429 with Retry-After."""

    default_detail = "Too many attempts. Try again later."


def _normalised(username: object) -> str:
    # The form log-in compares usernames in (accounts.names.username_key): whatever
    # signs in as alice (ALICE, a compatibility spelling) spends alice's budget.
    if not isinstance(username, str):
        return ""
    # A lone surrogate (JSON allows "\\ud800") cannot be encoded for the cache key:
    # spell it out, so the attempt is still counted and the serializer refuses the name.
    return fold(username.strip())[:150].encode(errors="backslashreplace").decode()


def attempt(request: HttpRequest, *, action: str, username: object = None) -> None:
    """Count one attempt at `action` from this address (and for this username); raise RateLimited past the limit.

    The limits are `settings.AUTH_RATE_LIMITS[action]`: a rate for "ip" and
    one for "username" (e.g. "10/5m"). Every key is counted before any is
    judged, so hammering one username also spends the address's budget.
    """
    if not settings.RATELIMIT_ENABLE:
        return
    rates: dict[str, str] = settings.AUTH_RATE_LIMITS[action]
    keys: list[tuple[str, str | Callable[..., str]]] = [("ip", "ip")]
    name = _normalised(username)
    if name and "username" in rates:
        keys.append(("username", lambda group, request: name))
    waits: list[float] = []
    for kind, key in keys:
        usage = get_usage(request, group=f"auth.{action}.{kind}", key=key, rate=rates[kind], increment=True)
        if usage is not None and usage["should_limit"]:
            waits.append(max(1, int(usage["time_left"])))
    if waits:
        raise RateLimited(wait=max(waits))


def limit_form(action: str) -> Callable[[Callable[..., HttpResponseBase]], Callable[..., HttpResponseBase]]:
    """Apply the `action` limits to a form view's POSTs (the admin's log-in, the web UI's): a 429 page past them."""

    def decorate(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if request.method == "POST":
                try:
                    attempt(request, action=action, username=request.POST.get("username"))
                except RateLimited as exc:
                    response = HttpResponse(
                        "Too many attempts. Try again later.\n", status=429, content_type="text/plain"
                    )
                    response["Retry-After"] = str(int(exc.wait or 60))  # type: ignore[attr-defined]
                    return response
            return view(request, *args, **kwargs)

        return wrapped

    return decorate


limit_form_login = limit_form("login")


class _SettingsRate:
    """Read the rate from settings.API_THROTTLE_RATES on every request, and obey RATELIMIT_ENABLE."""

    scope: str | None

    def get_rate(self) -> str | None:
        rates: dict[str, str] = settings.API_THROTTLE_RATES
        return rates.get(self.scope or "")

    def allow_request(self, request: Any, view: Any) -> bool:
        if not settings.RATELIMIT_ENABLE:
            return True
        try:
            return super().allow_request(request, view)  # type: ignore[misc]
        except Exception:
            # The counters live in Redis. While it is away, fail open: a send
            # that commits to PostgreSQL beats a 500 (docs/reliability.md).
            logger.warning("rate limit: cache unreachable, request allowed", exc_info=True)
            return True

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        key = super().get_cache_key(request, view)  # type: ignore[misc]
        # One prefix for every rate-limit counter, so tests can start each from zero.
        return None if key is None else f"{settings.RATELIMIT_CACHE_PREFIX}{key}"


class AnonThrottle(_SettingsRate, AnonRateThrottle):
    """Requests without credentials, per address."""


class UserThrottle(_SettingsRate, UserRateThrottle):
    """Requests of a signed-in user, per account, across all their clients."""


# --- The sending budget -------------------------------------------------------------

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smh])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


@functools.lru_cache(maxsize=16)
def parse_rate(rate: str) -> tuple[int, int]:
    """Return (count, seconds) of a rate like "30/10s", "60/m" or "1000/h"."""
    match = _RATE.match(rate)
    if match is None:
        raise ValueError(f"A rate is 'count/period' with a period like 10s, m or 1h, not {rate!r}.")
    count, multiple, unit = match.groups()
    return int(count), int(multiple or 1) * _UNIT_SECONDS[unit]


def _send_window(user_id: int) -> tuple[str, int, float]:
    """Return the counter key of the user's current window, the window's length and the seconds left in it."""
    _, seconds = parse_rate(settings.USER_SEND_RATE)
    now = time.time()
    window = int(now // seconds)
    return f"{settings.RATELIMIT_CACHE_PREFIX}send:{user_id}:{window}", seconds, (window + 1) * seconds - now


def _over_budget(count: int, left: float) -> float | None:
    allowed, _ = parse_rate(settings.USER_SEND_RATE)
    return max(0.1, math.ceil(left * 10) / 10) if count > allowed else None


def _cache_unreachable() -> None:
    # The counters live in Redis. While it is away, fail open: a send that
    # commits to PostgreSQL beats a refusal (docs/reliability.md).
    logger.warning("send budget: cache unreachable, send allowed", exc_info=True)


def send_budget_spend(user_id: int) -> float | None:
    """Count one send (a message or typing notice) against the user's budget.

    Return None if it is within the budget, else the seconds until the next
    window opens. One cache round trip.
    """
    if not settings.RATELIMIT_ENABLE:
        return None
    key, seconds, left = _send_window(user_id)
    try:
        if hasattr(cache, "count_in_window"):
            count = cache.count_in_window(key, seconds)
        else:  # local memory: no round trip to save
            cache.add(key, 0, seconds)
            count = cache.incr(key)
    except Exception:
        _cache_unreachable()
        return None
    return _over_budget(count, left)


async def asend_budget_spend(user_id: int) -> float | None:
    """`send_budget_spend` from the event loop: one round trip on the loop's own Redis connection, no thread."""
    if not settings.RATELIMIT_ENABLE:
        return None
    key, seconds, left = _send_window(user_id)
    try:
        if hasattr(cache, "acount_in_window"):
            count = await cache.acount_in_window(key, seconds)
        else:
            cache.add(key, 0, seconds)
            count = cache.incr(key)
    except Exception:
        _cache_unreachable()
        return None
    return _over_budget(count, left)


def send_budget_require(user_id: int) -> None:
    """Spend one send of the user's budget, or raise RateLimited (429 with Retry-After)."""
    wait = send_budget_spend(user_id)
    if wait is not None:
        raise RateLimited(detail="Too many messages. Slow down.", wait=math.ceil(wait))


# --- Uploads --------------------------------------------------------------------------------


def upload_budget_require(user_id: int) -> None:
    """Count one upload against settings.USER_UPLOAD_RATE, or raise RateLimited (429 with Retry-After).

    Its own fixed window, apart from the sending budget: a burst of files is
    refused without slowing the user's messages.
    """
    if not settings.RATELIMIT_ENABLE:
        return
    allowed, seconds = parse_rate(settings.USER_UPLOAD_RATE)
    now = time.time()
    window = int(now // seconds)
    key = f"{settings.RATELIMIT_CACHE_PREFIX}upload:{user_id}:{window}"
    try:
        cache.add(key, 0, seconds)
        count = cache.incr(key)
    except Exception:
        _cache_unreachable()
        return
    if count > allowed:
        wait = math.ceil((window + 1) * seconds - now)
        raise RateLimited(detail="Too many uploads at once. Wait a moment and try again.", wait=max(1, wait))
