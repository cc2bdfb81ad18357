"""The account's own security log: sign-ins, new devices and two-factor changes (`SecurityLogEntry`).

Shown to the owner in the profile next to "where you're signed in", so an
unexpected sign-in or a second factor turned off is noticed by the person
it matters to.
"""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest
from django.utils.crypto import salted_hmac

from accounts.models import SecurityLogEntry, User

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
