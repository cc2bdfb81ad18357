"""The server's ASGI application with a hold before commit, for delivery tests only.

With CHAT_TEST_HOLD_BEFORE_COMMIT="marker:seconds", a transaction whose event
carries a message body containing the marker sleeps right after its event
took its id, so a test can make a lower id commit after a higher one was
taken on another process. Production code has no such hook: this module
wraps the event record's insert from outside.
"""

from __future__ import annotations

import os
import time
from typing import Any

from chatproject.asgi import application
from realtime.tests.realtime_support import HOLDING
from rooms.events import record

marker, _, seconds = os.environ.get("CHAT_TEST_HOLD_BEFORE_COMMIT", "").rpartition(":")
_insert = record._insert_in_order


def _insert_then_hold(event: Any) -> None:
    _insert(event)
    message = event.payload.get("message")
    if marker and isinstance(message, dict) and marker in message.get("body", ""):
        print(HOLDING, flush=True)
        time.sleep(float(seconds))


record._insert_in_order = _insert_then_hold

__all__ = ["application"]
