"""API tokens that can be taken back before they expire.

simplejwt's tokens are good until `exp` once signed. Two claims make them revocable:

- `ver`: the user's `token_version` when the sign-in began. Raising the
  version (sign out everywhere, a new password) stops every token minted
  before, at the next request.
- `fam`: the sign-in's `TokenFamily`. Rotation keeps it, so every refresh
  token that descends from one log-in, and each access token made from
  them, names the same family; revoking it (that sign-in's log-out, or a
  refresh token presented twice) stops them all.

`token_user` checks both where a token is accepted: the REST API's
authentication (`TokenAuthentication`) and the WebSocket handshake. It is the
user lookup simplejwt makes anyway, with the family check joined in, so it
costs no extra query.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import Exists
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken, Token
from rest_framework_simplejwt.utils import datetime_from_epoch

from accounts.models import TokenFamily, User

VERSION_CLAIM = "ver"
FAMILY_CLAIM = "fam"


def refresh_token_issue(user: User, *, user_agent: str = "", ip: str | None = None) -> RefreshToken:
    """Start a sign-in: a new family and its first refresh token (its `access_token` goes with it).

    `user_agent` and `ip` say where it began, for the profile's list of sign-ins.
    """
    family = TokenFamily.objects.create(user=user, user_agent=user_agent, ip=ip, version=user.token_version)
    token = RefreshToken()
    token[api_settings.USER_ID_CLAIM] = str(user.pk)
    token[VERSION_CLAIM] = user.token_version
    token[FAMILY_CLAIM] = family.id.hex
    # What simplejwt's for_user records, so rotation and the blacklist know this token.
    OutstandingToken.objects.create(
        user=user,
        jti=token[api_settings.JTI_CLAIM],
        token=str(token),
        created_at=token.current_time,
        expires_at=datetime_from_epoch(token["exp"]),
    )
    return token


def token_family(token: Token | dict[str, Any]) -> uuid.UUID | None:
    """Return the family a token names (None for a token minted before families existed)."""
    raw = token.get(FAMILY_CLAIM)
    if raw is None:
        return None
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        raise InvalidToken("Token names no valid sign-in.") from None


def token_user(token: Token) -> User:
    """Return the active user a validated token speaks for, or raise AuthenticationFailed.

    Refused: an unknown or inactive user, a token minted under an older
    `token_version`, and a token of a revoked family.
    """
    try:
        user_id = token[api_settings.USER_ID_CLAIM]
    except KeyError:
        raise InvalidToken("Token contained no recognizable user identification") from None
    family = token_family(token)
    users = User.objects.filter(pk=user_id)
    if family is not None:
        users = users.annotate(
            family_revoked=Exists(TokenFamily.objects.filter(pk=family, user_id=user_id, revoked_at__isnull=False))
        )
    user = users.first()
    if user is None:
        raise AuthenticationFailed("User not found", code="user_not_found")
    if not user.is_active:
        raise AuthenticationFailed("User is inactive", code="user_inactive")
    # Tokens from before versions existed carry none: they stand for version 0.
    if token.get(VERSION_CLAIM, 0) != user.token_version or getattr(user, "family_revoked", False):
        raise AuthenticationFailed("This token was revoked; sign in again.", code="token_revoked")
    return user


class TokenAuthentication(JWTAuthentication):
    """`Authorization: Bearer <access>` for the REST API, refusing revoked tokens (`token_user`)."""

    def get_user(self, validated_token: Token) -> User:  # type: ignore[override]
        return token_user(validated_token)


class TokenAuthenticationScheme(SimpleJWTScheme):
    """Describe TokenAuthentication in the OpenAPI schema as simplejwt's bearer scheme, which it is."""

    target_class = "accounts.tokens.TokenAuthentication"
