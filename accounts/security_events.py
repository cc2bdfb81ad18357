"""The account's own security log: sign-ins, new devices and two-factor changes (`SecurityLogEntry`).

Shown to the owner in the profile next to "where you're signed in", so an
unexpected sign-in or a second factor turned off is noticed by the person
it matters to.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import salted_hmac

from accounts.models import SecurityLogEntry, TokenFamily, User

USER_AGENT_MAX = 300


def client_of(request: HttpRequest | None) -> tuple[str | None, str]:
    """The address and the user agent a request came from (the agent cut to what is kept)."""
    if request is None:
        return None, ""
    agent = str(request.META.get("HTTP_USER_AGENT", ""))
    # What is shown back in a page must be printable text.
    agent = "".join(char for char in agent if char.isprintable())[:USER_AGENT_MAX]
    return request.META.get("REMOTE_ADDR") or None, agent


def _device(user_agent: str) -> str:
    # Keyed, so the stored value tells nothing beyond "same agent as before".
    return salted_hmac("accounts.security_events.device", user_agent, algorithm="sha256").hexdigest()


def record(*, user: User, kind: str, request: HttpRequest | None = None, via: str = "") -> SecurityLogEntry:
    ip, agent = client_of(request)
    return SecurityLogEntry.objects.create(
        user=user, kind=kind, ip=ip, user_agent=agent, device=_device(agent) if agent else "", via=via
    )


@transaction.atomic
def sign_in_record(*, user: User, request: HttpRequest | None, via: str) -> bool:
    """Record a finished sign-in; return whether it came from a device (user agent) not seen before for the account."""
    _, agent = client_of(request)
    device = _device(agent) if agent else ""
    seen_before = SecurityLogEntry.objects.filter(user=user, device=device, kind=SecurityLogEntry.Kind.SIGN_IN).exists()
    new_device = bool(device) and not seen_before
    if new_device and SecurityLogEntry.objects.filter(user=user, kind=SecurityLogEntry.Kind.SIGN_IN).exists():
        # The very first sign-in is no news; a later one from elsewhere is.
        record(user=user, kind=SecurityLogEntry.Kind.NEW_DEVICE, request=request, via=via)
    record(user=user, kind=SecurityLogEntry.Kind.SIGN_IN, request=request, via=via)
    return new_device


def recent(*, user: User, limit: int = 20) -> list[SecurityLogEntry]:
    return list(SecurityLogEntry.objects.filter(user=user).order_by("-id")[:limit])


SIGN_INS_SHOWN = 50


def sign_ins_active(*, user: User) -> list[TokenFamily]:
    """The API sign-ins (apps, the terminal client) of the user's that can still refresh, newest first.

    Over: one signed out or revoked, one from before the last sign-out
    everywhere, and one not refreshed for longer than a refresh token lives.
    """
    cutoff = timezone.now() - settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"]
    return list(
        TokenFamily.objects.filter(user=user, revoked_at__isnull=True, version=user.token_version)
        .alias(last_active=Coalesce("last_used_at", "created_at"))
        .filter(last_active__gte=cutoff)
        .order_by("-created_at")[:SIGN_INS_SHOWN]
    )


def sign_in_payload(family: TokenFamily) -> dict[str, Any]:
    return {
        "id": family.id.hex,
        "user_agent": family.user_agent,
        "ip": family.ip,
        "created_at": family.created_at,
        "last_used_at": family.last_used_at,
    }


def event_payload(entry: SecurityLogEntry) -> dict[str, Any]:
    return {
        "kind": entry.kind,
        "description": entry.get_kind_display(),
        "created_at": entry.created_at,
        "ip": entry.ip,
        "user_agent": entry.user_agent,
        "via": entry.via,
    }


def parse_sign_in_id(raw: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        return None
