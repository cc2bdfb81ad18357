"""The site-wide Content-Security-Policy's per-request part, and the API docs page under it.

`settings.SECURE_CSP` is the policy (Django's ContentSecurityPolicyMiddleware
sends it); this module adds the one thing settings cannot know: the
ws:// or wss:// origin of the host the page was served from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponseBase
from django.utils.csp import CSP
from drf_spectacular.views import SpectacularSwaggerSplitView


class WebSocketConnectSrcMiddleware:
    """Name the page's own ws:// or wss:// origin in connect-src.

    CSP Level 3 counts them as 'self', but not every browser does. Goes after
    ContentSecurityPolicyMiddleware in MIDDLEWARE, so it runs first on the way out.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        # A view that chose its own policy (csp_override, or a header it set) keeps it.
        if settings.SECURE_CSP and not hasattr(response, "_csp_config") and CSP.HEADER_ENFORCE not in response:
            try:
                host = request.get_host()
            except DisallowedHost:
                return response  # refused with 400 already; the plain policy will do
            scheme = "wss" if request.is_secure() else "ws"
            policy: dict[str, Any] = dict(settings.SECURE_CSP)
            connect = [*policy.get("connect-src", [CSP.SELF]), f"{scheme}://{host}"]
            response._csp_config = {**policy, "connect-src": connect}  # type: ignore[attr-defined]
        return response


class ApiDocsView(SpectacularSwaggerSplitView):
    """Swagger UI with no inline script: its start-up code is a separate script from this origin.

    The page's one inline style block carries the request's CSP nonce
    (templates/api/swagger_ui.html).
    """

    template_name = "api/swagger_ui.html"
