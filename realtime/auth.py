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
from django.http.request import validate_host
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


def origin_allowed(origin: str) -> bool:
    """Whether a browser page at `origin` may open a socket here.

    Allowed: the hosts this server answers to, and CSRF_TRUSTED_ORIGINS.
    """
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    return validate_host(parts.hostname, settings.ALLOWED_HOSTS)


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
            if origin is not None and not origin_allowed(origin):
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
