"""The request type of API views that require a signed-in user."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework.request import Request

if TYPE_CHECKING:
    from accounts.models import User

    class AuthedRequest(Request):
        """A request that passed IsAuthenticated: `user` is a real account."""

        user: User  # type: ignore[assignment]
else:
    # At run time a plain DRF request; the subclass exists for the type checker only.
    AuthedRequest = Request
