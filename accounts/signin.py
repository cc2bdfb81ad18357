"""Finishing a sign-in, the same way after a password alone or after a second factor.

`auth/token/`, `auth/token/mfa/`, the web login and its code page all end
here, so every sign-in is recorded (accounts.security_events) and an API
sign-in's token family knows where it began.
"""

from __future__ import annotations

from django.contrib.auth.models import update_last_login
from django.db import transaction
from django.http import HttpRequest

from accounts import mfa, security_events, services
from accounts.models import User


class MfaRequired(Exception):
    """The password was right, and the account needs a second factor: the client gets an `mfa_token`."""

    def __init__(self, user: User) -> None:
        super().__init__("mfa_required")
        self.body = {
            "code": "mfa_required",
            "detail": "Enter the code from your authenticator app, or a recovery code.",
            "mfa_token": mfa.mfa_token_issue(user),
            "methods": mfa.mfa_methods(user),
        }


@transaction.atomic
def api_sign_in(*, user: User, request: HttpRequest | None, via: str) -> dict[str, str]:
    """Start an API sign-in (a new token family) for a user who has given every factor their account needs."""
    ip, agent = security_events.client_of(request)
    pair = services.tokens_for(user, user_agent=agent, ip=ip)
    update_last_login(None, user)  # type: ignore[arg-type]  # the sender is unused
    security_events.sign_in_record(user=user, request=request, via=via)
    return pair


def password_step(*, user: User) -> None:
    """After a right password: raise MfaRequired if the account has two-factor on."""
    if mfa.mfa_enabled(user):
        raise MfaRequired(user)
