"""Fixtures for messaging tests: posting through the service."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from messaging.models import Message


@pytest.fixture
def say(db: None) -> Callable[..., Message]:
    """Return a function that posts a message through `message_post` and returns it."""
    from messaging.services import message_post

    def post(room, author, body: str = "hello", **extra: object) -> Message:  # type: ignore[no-untyped-def]
        message, _ = message_post(room=room, author=author, body=body, **extra)
        return message

    return post
