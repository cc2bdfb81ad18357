"""The chat screen: one page that the ES modules in static/js/ bring to life over REST and /ws/."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles import finders
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie

# The reaction picker's choices (any emoji may be sent; these are one click away).
REACTIONS = [
    ("👍", "thumbs up"),
    ("❤️", "heart"),
    ("😂", "laughing"),
    ("🎉", "party"),
    ("😮", "surprised"),
    ("😢", "sad"),
    ("👀", "eyes"),
    ("✅", "done"),
]


@login_required
@ensure_csrf_cookie
@never_cache
def chat(request: HttpRequest, room_id: int | None = None) -> HttpResponse:
    """Serve the app shell; `/rooms/<id>/` opens that room (the page's script reads the address)."""
    context = {
        "max_length": settings.MESSAGE_MAX_LENGTH,
        "reactions": REACTIONS,
        # The page refuses a file over the limit before sending a byte of it.
        "upload_max_bytes": settings.UPLOAD_MAX_BYTES,
    }
    return render(request, "chat/app.html", context)


@never_cache
def service_worker(request: HttpRequest) -> HttpResponse:
    """Serve the service worker from the site's root, so that its scope is the whole site."""
    path = finders.find("js/sw.js")
    assert isinstance(path, str)
    with open(path, encoding="utf-8") as source:
        response = HttpResponse(source.read(), content_type="text/javascript; charset=utf-8")
    response["Service-Worker-Allowed"] = "/"
    return response
