"""HTTP rate limits: django-ratelimit on the password and token routes, DRF throttles on the rest.

Every counter lives in the default cache (local memory, or Redis with
REDIS_URL, shared by every process). `RATELIMIT_ENABLE=0` turns all of them
off, for load tests only. A refused request gets 429 with `Retry-After`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django_ratelimit.core import get_usage
from rest_framework.exceptions import Throttled
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

logger = logging.getLogger(__name__)


class RateLimited(Throttled):
    """Too many attempts; DRF turns this into 429 with Retry-After."""

    default_detail = "Too many attempts. Try again later."


def _normalised(username: object) -> str:
    # Usernames are case-insensitive, so ALICE and alice share one budget.
    if not isinstance(username, str):
        return ""
    # A lone surrogate (JSON allows "\\ud800") cannot be encoded for the cache key:
    # spell it out, so the attempt is still counted and the serializer refuses the name.
    return username.strip().lower()[:150].encode(errors="backslashreplace").decode()


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
