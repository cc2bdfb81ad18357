"""The WebSocket handshake's gatekeepers: Origin check and session-or-JWT authentication.

Both refuse before the socket is accepted, so a refused handshake gets
HTTP 403 and never reaches the consumer.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import structlog
from channels.auth import AuthMiddlewareStack
from channels.middleware import BaseMiddleware
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.request import split_domain_port, validate_host
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken, TokenError

from accounts.tokens import TokenAuthentication, token_family
from core import metrics
from core.db import run_db

log = structlog.get_logger(__name__)


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


DEFAULT_PORTS = {"http": 80, "https": 443}

# (scheme, host, port): an origin compared the way browsers define one.
Origin = tuple[str, str, int]


def origin_parts(origin: str) -> Origin | None:
    """Return an origin's scheme, lower-case host and port (the scheme's default if none), or None if malformed."""
    parts = urlsplit(origin.strip())
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.username is not None:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    return parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme]


def _is_secure(scope: dict[str, Any]) -> bool:
    """Whether the handshake came over TLS, as Django's request.is_secure() decides for HTTP."""
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        name, secure_value = proxy_header
        value = _header(scope, name.removeprefix("HTTP_").replace("_", "-").lower().encode("latin-1"))
        if value is not None:
            return value.split(",", 1)[0].strip() == secure_value
    # Daphne's scope names no scheme; realtime.daphne adds it from the transport.
    return scope.get("scheme") in ("wss", "https")


def own_origin(scope: dict[str, Any]) -> Origin | None:
    """Return the origin a page of this server has, seen from the handshake: its Host header and scheme.

    None when the Host is missing or not in ALLOWED_HOSTS.
    """
    host = _header(scope, b"host")
    if host is None:
        return None
    domain, port = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return None
    scheme = "https" if _is_secure(scope) else "http"
    return scheme, domain.strip("[]"), int(port) if port else DEFAULT_PORTS[scheme]


def _trusted(origin: Origin) -> bool:
    """Whether CSRF_TRUSTED_ORIGINS lists the origin, exactly or as `scheme://*.domain` (Django's rule)."""
    scheme, host, port = origin
    for entry in settings.CSRF_TRUSTED_ORIGINS:
        if "://*." in entry:
            wildcard = origin_parts(entry.replace("://*.", "://", 1))
            if wildcard is None or (wildcard[0], wildcard[2]) != (scheme, port):
                continue
            if host == wildcard[1] or host.endswith(f".{wildcard[1]}"):
                return True
        elif origin_parts(entry) == origin:
            return True
    return False


def origin_allowed(origin: str, scope: dict[str, Any]) -> bool:
    """Whether a browser page at `origin` may open a socket here.

    Allowed: this server's own origin as the handshake shows it (scheme, host
    and port, as for Django's CSRF check), and CSRF_TRUSTED_ORIGINS. A page
    on another port or scheme of the same host is another origin.
    """
    parts = origin_parts(origin)
    if parts is None:
        return False
    return parts == own_origin(scope) or _trusted(parts)


class OriginCheck:
    """Refuse handshakes from foreign Origins (cross-site WebSocket hijacking).

    A handshake without an Origin header comes from a non-browser client,
    which cannot carry a victim's cookies, so it passes to authentication.
    """

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket":
            origin = _header(scope, b"origin")
            if origin is not None and not origin_allowed(origin, scope):
                log.info("ws.refused", reason="origin", origin=origin[:200])
                metrics.handshake_refused("origin")
                return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


def _user_for_token(raw_token: str) -> tuple[Any, float | None, str | None]:
    """Return the user, expiry and family of an access token; an anonymous user if it is refused.

    The same checks as the REST API's (accounts.tokens): a revoked token
    opens no socket even before it expires.
    """
    authenticator = TokenAuthentication()
    try:
        token = authenticator.get_validated_token(raw_token.encode())
        user = authenticator.get_user(token)
        family = token_family(token)
    except (InvalidToken, AuthenticationFailed, TokenError):
        return AnonymousUser(), None, None
    # token_user checks is_active too, but say it where it matters.
    if not user.is_active:
        return AnonymousUser(), None, None
    return user, float(token["exp"]), family.hex if family is not None else None


class BearerTokenMiddleware(BaseMiddleware):
    """Authenticate with `Authorization: Bearer <access>` when the header is present.

    A bad token makes the user anonymous (and the handshake is refused), even
    if a session cookie came along: the client asked to be this token. The
    token's expiry and family go into the scope: the socket closes (4001) when
    the token expires or its sign-in ends.
    """

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        authorization = _header(scope, b"authorization")
        if authorization is not None:
            kind, _, raw_token = authorization.partition(" ")
            if kind.lower() == "bearer" and raw_token.strip():
                user, expires_at, family = await run_db(_user_for_token, raw_token.strip())
            else:
                user, expires_at, family = AnonymousUser(), None, None
            scope = {**scope, "user": user, "token_expires_at": expires_at, "token_family": family}
        return await super().__call__(scope, receive, send)


def websocket_gate(application: Any) -> Any:
    """Wrap the WebSocket router: Origin check, then session cookie, then bearer token."""
    return OriginCheck(AuthMiddlewareStack(BearerTokenMiddleware(application)))
