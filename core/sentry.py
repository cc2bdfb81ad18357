"""Error tracking with Sentry, on when SENTRY_DSN is set.

Events carry the exception, its stack (without local variables), the route
and the request id of the log lines around it, and no personal data: no
user, no address, no cookies or credentials, no request bodies or query
strings (search terms go there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sentry_sdk
import structlog
from sentry_sdk.integrations.asgi import SentryAsgiMiddleware
from sentry_sdk.integrations.django import DjangoIntegration

from core.logs import redact_text

if TYPE_CHECKING:
    from sentry_sdk._types import Event


def init(*, dsn: str, environment: str, release: str | None, traces_sample_rate: float) -> None:
    """Start reporting unhandled exceptions and error log lines to Sentry."""
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release or None,
        # Django's integration also instruments Channels' HTTP handling;
        # `wrap_websocket` covers the consumers.
        integrations=[DjangoIntegration()],
        send_default_pii=False,
        include_local_variables=False,
        max_request_body_size="never",
        traces_sample_rate=traces_sample_rate,
        before_send=scrub_event,
        before_breadcrumb=scrub_breadcrumb,
    )


def scrub_event(event: Event, hint: dict[str, Any]) -> Event:
    """Drop what may identify a person, and tag the event with the request id of its log lines."""
    event.pop("user", None)
    request = event.get("request")
    if isinstance(request, dict):
        for key in ("cookies", "data", "query_string", "env"):
            request.pop(key, None)
        url = request.get("url")
        if isinstance(url, str):
            request["url"] = url.split("?", 1)[0]
    context = structlog.contextvars.get_contextvars()
    tags = event.setdefault("tags", {})
    for key in ("request_id", "route"):
        if context.get(key):
            tags[key] = str(context[key])
    return event


def scrub_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    """Redact tokens from the log lines Sentry keeps as breadcrumbs."""
    if isinstance(crumb.get("message"), str):
        crumb["message"] = redact_text(crumb["message"])
    return crumb


def wrap_websocket(application: Any) -> Any:
    """Report exceptions that escape a WebSocket consumer, when Sentry is on."""
    if not sentry_sdk.is_initialized():
        return application
    return SentryAsgiMiddleware(application)
