"""ASGI entry point of the naive reference: WebSockets at /ws/ through one consumer per socket.

    cd bench && NAIVE_REDIS_URL=redis://127.0.0.1:6379/0 \
        ../.venv/bin/python -m daphne -p 8766 naive_channels.asgi:application
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "naive_channels.settings")
django.setup()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from naive_channels.consumers import ChatConsumer  # noqa: E402

application = ProtocolTypeRouter({"websocket": URLRouter([path("ws/", ChatConsumer.as_asgi())])})
