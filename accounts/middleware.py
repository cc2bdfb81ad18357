"""Keep staff out of the admin until they have two-factor sign-in on (REQUIRE_2FA_FOR_STAFF)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase, HttpResponseRedirect
from django.urls import reverse

from accounts import mfa


class StaffTwoFactorMiddleware:
    """With REQUIRE_2FA_FOR_STAFF on, a signed-in staff member without two-factor is sent to set it up.

    Only the admin is closed to them: the chat and the enrolment page stay
    open, or they could not enrol. Off (the default), it costs nothing.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if settings.REQUIRE_2FA_FOR_STAFF and request.path.startswith(reverse("admin:index")):
            user = request.user
            if user.is_authenticated and user.is_staff and not mfa.mfa_enabled(user):  # type: ignore[arg-type]
                query = urlencode({"next": request.get_full_path()})
                return HttpResponseRedirect(f"{reverse('two-factor')}?{query}")
        return self.get_response(request)
