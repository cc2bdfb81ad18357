"""The chat screen: one page that the ES modules in static/js/ bring to life over REST and /ws/."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
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
