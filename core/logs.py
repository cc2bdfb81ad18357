"""Structured logging: JSON lines in production, readable lines while developing.

Every line goes through the same processors, whether it was written with
structlog (`structlog.get_logger`) or the standard library
(`logging.getLogger`, Django, Daphne, Channels):

- the context bound for the current HTTP request or WebSocket connection
  (`request_id`, `user_id`, `route`) is merged in;
- values under sensitive keys (passwords, tokens, message bodies, cookies)
  and anything shaped like a JWT or a bearer credential are replaced by
  "[redacted]", so a careless call cannot leak them.

`LOG_FORMAT=json` prints one JSON object a line; `LOG_FORMAT=console` prints
aligned text. The settings choose console with DEBUG on, JSON otherwise, and
hand their LOGGING dict to `configure` (Django's LOGGING_CONFIG hook).
"""

from __future__ import annotations

import logging
import logging.config
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from django.http import HttpRequest, HttpResponseBase
from django.utils.functional import SimpleLazyObject, empty
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED = "[redacted]"

# Keys whose values never reach a log line, whatever the caller passed.
SENSITIVE_KEYS = frozenset(
    {
        "access",
        "api_key",
        "authorization",
        "body",
        "cookie",
        "cookies",
        "credentials",
        "csrftoken",
        "dsn",
        "headers",
        "jwt",
        "message_body",
        "new_password",
        "old_password",
        "password",
        "password1",
        "password2",
        "refresh",
        "secret",
        "secret_key",
        "sessionid",
        "text",
        "token",
    }
)
_SENSITIVE_SUFFIXES = ("_password", "_token", "_secret")
# A JWT (three base64url parts, the first a JSON header) and "Bearer <credential>".
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[^\s,;\"']+")

REQUEST_ID_HEADER = "X-Request-ID"
# Ids from a proxy (Caddy's UUIDs, nginx's $request_id) or a client; anything
# else is replaced, so an id can never break a log line or smuggle text into it.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{7,127}")

# Probes and scrapes arrive every few seconds from every replica: log them at DEBUG.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

access_log = structlog.get_logger("chat.access")


# --- Redaction -------------------------------------------------------------------------------


def _is_sensitive(key: str) -> bool:
    lowered = key.lower()
    return lowered in SENSITIVE_KEYS or lowered.endswith(_SENSITIVE_SUFFIXES)


def redact_text(text: str) -> str:
    """Return `text` with JWTs and bearer credentials replaced."""
    if "eyJ" in text:
        text = _JWT.sub(REDACTED, text)
    return _BEARER.sub(rf"\1 {REDACTED}", text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {key: REDACTED if _is_sensitive(str(key)) else _redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(item) for item in value]
    return value


def redact(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Replace sensitive values in a log line (a structlog processor)."""
    # The fixed fields first, so a line reads well as text too.
    ordered = {key: event_dict.pop(key) for key in ("timestamp", "level", "logger", "event") if key in event_dict}
    ordered.update(event_dict)
    return {key: REDACTED if _is_sensitive(key) else _redact_value(value) for key, value in ordered.items()}


# --- Configuration ------------------------------------------------------------------------------

# Run on every line, structlog's and the standard library's alike.
SHARED_PROCESSORS: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.add_log_level,
    structlog.stdlib.ExtraAdder(allow=("request_id", "user_id", "route")),
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def _renderer(log_format: str) -> Processor:
    if log_format == "json":
        return structlog.processors.JSONRenderer()
    if log_format == "console":
        # Plain tracebacks: rich's pretty ones would print local variables.
        return structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    raise ValueError(f"LOG_FORMAT must be 'json' or 'console', not {log_format!r}")


def formatter(log_format: str = "json") -> structlog.stdlib.ProcessorFormatter:
    """Return the logging.Formatter that renders every record as `log_format` ("json" or "console")."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=SHARED_PROCESSORS,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.StackInfoRenderer(),
            # Tracebacks become text here, so redaction sees them too; never with local variables.
            structlog.processors.format_exc_info,
            redact,
            _renderer(log_format),
        ],
    )


def configure(logging_settings: dict[str, Any]) -> None:
    """Apply the LOGGING setting (Django's LOGGING_CONFIG hook), after pointing structlog at it.

    structlog's loggers hand their lines to the standard library, so one
    handler with the `formatter` below renders everything.
    """
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *SHARED_PROCESSORS,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    logging.config.dictConfig(logging_settings)


# --- Request and connection context ----------------------------------------------------------------


def request_id_from(value: str | None) -> str:
    """Return the caller's request id when it looks like one, else a new one."""
    if value and _VALID_REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


class ConnectionLogContext:
    """ASGI middleware: bind a WebSocket connection's request id and route for its log lines.

    Each connection runs in a task of its own, so what is bound here stays
    with that connection: the handshake checks, the consumer's handlers and
    the tasks it starts. The consumer adds the user id once it knows it.
    """

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        header = next(
            (value.decode("latin-1") for key, value in scope.get("headers", []) if key.lower() == b"x-request-id"),
            None,
        )
        structlog.contextvars.bind_contextvars(request_id=request_id_from(header), route=scope.get("path", ""))
        return await self.application(scope, receive, send)


def _user_id(request: HttpRequest) -> int | None:
    """Return the request's user id if authentication already ran, without running it."""
    # DRF stores the user it authenticated on the request; AuthenticationMiddleware stores a lazy one.
    user = request.__dict__.get("user")
    if isinstance(user, SimpleLazyObject):
        user = None if user._wrapped is empty else user._wrapped
    return getattr(user, "pk", None) if getattr(user, "is_authenticated", False) else None


def route_of(request: HttpRequest) -> str:
    """Return the URL pattern that served the request (bounded, unlike the path)."""
    match = getattr(request, "resolver_match", None)
    if match is not None and match.route:
        return "/" + match.route.lstrip("^")
    return "<unmatched>"


class RequestLogMiddleware:
    """Give every request an id, bind it to every log line of the request, and log the outcome.

    The id is the caller's `X-Request-ID` when it is well-formed (a proxy
    sets one), else a new one; the response carries it back. The query
    string is never logged: it may carry search terms.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = request_id  # type: ignore[attr-defined]
        # Bound until the next request, not reset on the way out: Django logs
        # 4xx responses after the middleware returns, and those lines need the
        # id too. Under ASGI every request has a context of its own anyway.
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        level = logging.DEBUG if request.path in QUIET_PATHS else logging.INFO
        access_log.log(
            level,
            "http.request",
            method=request.method,
            path=request.path,
            route=route_of(request),
            status=response.status_code,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
            user_id=_user_id(request),
        )
        return response
