"""Liveness and readiness probes: /healthz while the process runs, /readyz only when its dependencies answer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.db import OperationalError
from django.test import Client

from core import health


class BrokenConnection:
    """Stand-in for django.db.connection whose database is unreachable."""

    def cursor(self) -> Any:
        raise OperationalError("connection refused")


class FailingLayer:
    """A channel layer whose backend is down."""

    async def new_channel(self, prefix: str = "specific.") -> str:
        return f"{prefix}abc"

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        raise ConnectionError("redis unreachable")

    async def receive(self, channel: str) -> dict[str, Any]:  # pragma: no cover - never reached
        raise AssertionError("receive after a failed send")


class SilentLayer(FailingLayer):
    """A channel layer that accepts messages but never delivers them."""

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        return None

    async def receive(self, channel: str) -> dict[str, Any]:
        await asyncio.sleep(60)
        return {}


def test_healthz_answers_ok_without_touching_the_database(client: Client) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz_needs_no_credentials_or_session(client: Client) -> None:
    response = client.get("/healthz", HTTP_AUTHORIZATION="Bearer not-a-token")

    assert response.status_code == 200


@pytest.mark.django_db
def test_readyz_answers_ok_when_database_and_channel_layer_answer(client: Client) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": True, "channel_layer": True}}


@pytest.mark.django_db
def test_readyz_is_unavailable_when_the_database_fails(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "connection", BrokenConnection())

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "checks": {"database": False, "channel_layer": True}}


@pytest.mark.django_db
def test_readyz_is_unavailable_without_a_channel_layer(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "get_channel_layer", lambda: None)

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"] == {"database": True, "channel_layer": False}


@pytest.mark.django_db
def test_readyz_is_unavailable_when_the_channel_layer_fails(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "get_channel_layer", FailingLayer)

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "checks": {"database": True, "channel_layer": False}}


@pytest.mark.django_db
def test_readyz_gives_up_on_a_channel_layer_that_never_answers(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "get_channel_layer", SilentLayer)
    monkeypatch.setattr(health, "READINESS_TIMEOUT", 0.05)

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["channel_layer"] is False
