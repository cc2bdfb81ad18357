"""Password reset by email, through a real SMTP server on loopback."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import authenticate
from rest_framework.test import APIClient

from accounts.services import tokens_for
from jobs.models import Job
from jobs.worker import Worker
from notifications.tests.conftest import MailHandler, MailServer, free_port

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a brand new passphrase 42"


@pytest.fixture
def mailbox(settings: Any) -> Iterator[MailServer]:
    server = MailServer(MailHandler(), free_port())
    server.start()
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": server.port, "timeout": 5},
        }
    }
    settings.SITE_URL = "https://chat.example.com"
    yield server
    server.stop()


def run_jobs() -> None:
    worker = Worker(worker_id="test", poll_interval=0.0, scheduler=False)
    for _ in range(20):
        if not worker.run_once():
            return


def reset_token(mailbox: MailServer) -> str:
    [email] = mailbox.messages
    text = next(part.get_content() for part in email.walk() if part.get_content_type() == "text/plain")
    match = re.search(r"https://chat\.example\.com/password/reset/confirm/\?token=(\S+)", text)
    assert match, text
    return match.group(1)


def test_a_reset_link_by_email_sets_a_new_password_and_ends_every_sign_in(alice, anon, mailbox) -> None:
    refresh = tokens_for(alice)["refresh"]
    response = anon.post("/api/v1/auth/password/reset/", {"email": "ALICE@example.com"}, format="json")
    assert response.status_code == 202
    run_jobs()
    [email] = mailbox.messages
    assert email["To"] == "alice@example.com"
    assert email["Subject"] == "Reset your password"
    token = reset_token(mailbox)

    confirm = {"token": token, "password": NEW_PASSWORD}
    assert anon.post("/api/v1/auth/password/reset/confirm/", confirm, format="json").status_code == 204
    assert authenticate(username="alice", password=NEW_PASSWORD) is not None
    assert anon.post("/api/v1/auth/token/refresh/", {"refresh": refresh}, format="json").status_code == 401
    # The link works once.
    again = anon.post("/api/v1/auth/password/reset/confirm/", confirm, format="json")
    assert again.status_code == 400
    assert "token" in again.json()


def test_an_unknown_address_gets_the_same_answer_and_no_email(alice, anon, mailbox) -> None:
    response = anon.post("/api/v1/auth/password/reset/", {"email": "nobody@example.com"}, format="json")
    assert response.status_code == 202
    assert not Job.objects.exists()
    run_jobs()
    assert mailbox.messages == []


def test_a_deactivated_account_gets_no_reset_email(alice, anon, mailbox) -> None:
    alice.is_active = False
    alice.save(update_fields=["is_active"])
    assert anon.post("/api/v1/auth/password/reset/", {"email": "alice@example.com"}, format="json").status_code == 202
    run_jobs()
    assert mailbox.messages == []


def test_a_weak_password_is_refused_and_the_link_still_works(alice, anon, mailbox) -> None:
    anon.post("/api/v1/auth/password/reset/", {"email": "alice@example.com"}, format="json")
    run_jobs()
    token = reset_token(mailbox)
    weak = anon.post("/api/v1/auth/password/reset/confirm/", {"token": token, "password": "123"}, format="json")
    assert weak.status_code == 400
    assert "password" in weak.json()
    ok = anon.post("/api/v1/auth/password/reset/confirm/", {"token": token, "password": NEW_PASSWORD}, format="json")
    assert ok.status_code == 204


@pytest.mark.parametrize("token", ["", "garbage", "MQ-abc-def", "////-x"])
def test_a_forged_token_is_refused(alice, anon, token) -> None:
    body = {"token": token, "password": NEW_PASSWORD}
    response = anon.post("/api/v1/auth/password/reset/confirm/", body, format="json")
    assert response.status_code == 400
    assert authenticate(username="alice", password=NEW_PASSWORD) is None


def test_asking_for_the_same_address_too_often_is_refused(alice, mailbox, settings) -> None:
    client = APIClient()
    answers = [
        client.post("/api/v1/auth/password/reset/", {"email": "alice@example.com"}, format="json").status_code
        for _ in range(6)
    ]
    assert answers == [202] * 5 + [429]


def test_the_web_pages_lead_from_the_log_in_page_to_a_new_password(alice, client, mailbox) -> None:
    assert "/password/reset/" in client.get("/login/").content.decode()
    response = client.post("/password/reset/", {"email": "alice@example.com"}, follow=True)
    assert "an email with a reset link is on its way" in response.content.decode()
    run_jobs()
    token = reset_token(mailbox)
    page = client.get(f"/password/reset/confirm/?token={token}")
    assert page.status_code == 200
    response = client.post(
        "/password/reset/confirm/",
        {"token": token, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        follow=True,
    )
    assert "Your password is changed" in response.content.decode()
    assert authenticate(username="alice", password=NEW_PASSWORD) is not None
