"""Password reset by email, and email verification for new accounts, through a real SMTP server on loopback."""

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


# --- EMAIL_VERIFICATION=1 -------------------------------------------------------------------


def verification_link(mailbox: MailServer) -> str:
    [email] = mailbox.messages
    assert email["Subject"] == "Confirm your email address"
    text = next(part.get_content() for part in email.walk() if part.get_content_type() == "text/plain")
    match = re.search(r"https://chat\.example\.com(/email/verify/\S+/)", text)
    assert match, text
    return match.group(1)


REGISTRATION = {"username": "newcomer", "email": "newcomer@example.com", "password": "a fine long passphrase"}
SIGN_IN = {"username": "newcomer", "password": "a fine long passphrase"}


def test_with_email_verification_a_newcomer_signs_in_only_after_following_the_link(
    anon, client, mailbox, settings
) -> None:
    settings.EMAIL_VERIFICATION = True
    registered = anon.post("/api/v1/auth/register/", REGISTRATION, format="json")
    assert registered.status_code == 201
    assert registered.json()["email_verification_required"] is True
    assert "access" not in registered.json()
    refused = anon.post("/api/v1/auth/token/", SIGN_IN, format="json")
    assert refused.status_code == 401
    assert refused.json()["detail"].startswith("Confirm your email address first")
    wrong = anon.post("/api/v1/auth/token/", {**SIGN_IN, "password": "not it at all"}, format="json")
    assert "Confirm" not in wrong.json()["detail"]  # only the password's owner learns it

    run_jobs()
    response = client.get(verification_link(mailbox), follow=True)
    assert "Your email address is confirmed" in response.content.decode()
    assert anon.post("/api/v1/auth/token/", SIGN_IN, format="json").status_code == 200


def test_with_email_verification_the_log_in_page_asks_to_confirm_first(client, mailbox, settings) -> None:
    settings.EMAIL_VERIFICATION = True
    signed_up = client.post("/signup/", {**REGISTRATION, "display_name": ""}, follow=True)
    assert "follow the link we emailed you" in signed_up.content.decode()
    page = client.post("/login/", SIGN_IN)
    assert "Confirm your email address first" in page.content.decode()
    assert "_auth_user_id" not in client.session


def test_a_forged_or_foreign_verification_link_confirms_nothing(anon, client, mailbox, settings) -> None:
    settings.EMAIL_VERIFICATION = True
    anon.post("/api/v1/auth/register/", REGISTRATION, format="json")
    response = client.get("/email/verify/forged-token/", follow=True)
    assert "invalid or has expired" in response.content.decode()
    assert anon.post("/api/v1/auth/token/", SIGN_IN, format="json").status_code == 401


def test_a_password_reset_by_email_also_confirms_the_address(anon, mailbox, settings) -> None:
    settings.EMAIL_VERIFICATION = True
    anon.post("/api/v1/auth/register/", REGISTRATION, format="json")
    run_jobs()
    mailbox.messages.clear()
    anon.post("/api/v1/auth/password/reset/", {"email": "newcomer@example.com"}, format="json")
    run_jobs()
    token = reset_token(mailbox)
    confirm = {"token": token, "password": "another fine passphrase"}
    assert anon.post("/api/v1/auth/password/reset/confirm/", confirm, format="json").status_code == 204
    signed_in = anon.post("/api/v1/auth/token/", {**SIGN_IN, "password": "another fine passphrase"}, format="json")
    assert signed_in.status_code == 200


def test_without_email_verification_newcomers_sign_in_at_once(anon, mailbox) -> None:
    registered = anon.post("/api/v1/auth/register/", REGISTRATION, format="json")
    assert "access" in registered.json()
    run_jobs()
    assert mailbox.messages == []
