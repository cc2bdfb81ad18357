"""Security events and "where you're signed in": recorded sign-ins, new devices, ending one sign-in or all."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import SecurityLogEntry, TokenFamily, User
from conftest import PASSWORD

pytestmark = pytest.mark.django_db

PHONE = "ChatApp/2.1 (Android 15)"
LAPTOP = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"


def api_sign_in(user_agent: str, username: str = "alice") -> dict[str, str]:
    client = APIClient(HTTP_USER_AGENT=user_agent)
    response = client.post("/api/v1/auth/token/", {"username": username, "password": PASSWORD}, format="json")
    assert response.status_code == 200, response.content
    tokens: dict[str, str] = response.json()
    return tokens


def bearer(access: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


def kinds(user: User) -> list[str]:
    return list(SecurityLogEntry.objects.filter(user=user).order_by("id").values_list("kind", flat=True))


def test_each_sign_in_is_recorded_and_a_new_device_after_the_first_is_flagged(alice):
    api_sign_in(PHONE)
    api_sign_in(PHONE)
    api_sign_in(LAPTOP)

    assert kinds(alice) == ["sign_in", "sign_in", "new_device", "sign_in"]
    newest = SecurityLogEntry.objects.filter(user=alice).first()
    assert newest is not None
    assert (newest.user_agent, newest.ip, newest.via) == (LAPTOP, "127.0.0.1", "api")


def test_a_web_sign_in_is_recorded(alice):
    client = Client(HTTP_USER_AGENT=LAPTOP)
    client.post("/login/", {"username": "alice", "password": PASSWORD})

    entry = SecurityLogEntry.objects.get(user=alice)
    assert (entry.kind, entry.via, entry.user_agent) == ("sign_in", "web", LAPTOP)


def test_a_user_agent_is_kept_as_printable_text_of_bounded_length(alice):
    api_sign_in("evil\x1b[31m\u202e" + "x" * 500)

    entry = SecurityLogEntry.objects.get(user=alice)
    assert entry.user_agent.startswith("evil[31m")
    assert len(entry.user_agent) == 300


def test_the_security_overview_lists_live_api_sign_ins_and_recent_events(alice):
    phone = api_sign_in(PHONE)
    laptop = api_sign_in(LAPTOP)
    bearer(laptop["access"]).post("/api/v1/auth/logout/", {"refresh": laptop["refresh"]}, format="json")

    body = bearer(phone["access"]).get("/api/v1/auth/security/").json()

    assert [sign_in["user_agent"] for sign_in in body["sign_ins"]] == [PHONE]
    assert set(body["sign_ins"][0]) == {"id", "user_agent", "ip", "created_at", "last_used_at"}
    assert [event["kind"] for event in body["events"]] == ["sign_in", "new_device", "sign_in"]
    assert body["events"][0]["description"] == "signed in"


def test_a_refresh_marks_the_sign_in_as_used(alice):
    phone = api_sign_in(PHONE)

    APIClient().post("/api/v1/auth/token/refresh/", {"refresh": phone["refresh"]}, format="json")

    assert TokenFamily.objects.get(user=alice).last_used_at is not None


def test_ending_one_sign_in_stops_its_tokens_and_leaves_the_others(alice):
    phone = api_sign_in(PHONE)
    laptop = api_sign_in(LAPTOP)
    laptop_family = TokenFamily.objects.get(user=alice, user_agent=LAPTOP)

    response = bearer(phone["access"]).delete(f"/api/v1/auth/sign-ins/{laptop_family.id}/")

    assert response.status_code == 204
    assert bearer(laptop["access"]).get("/api/v1/users/me/").status_code == 401
    assert bearer(phone["access"]).get("/api/v1/users/me/").status_code == 200


def test_another_persons_sign_in_cannot_be_ended(alice, bob):
    bobs = api_sign_in(PHONE, username="bob")
    family = TokenFamily.objects.get(user=bob)

    response = bearer(api_sign_in(LAPTOP)["access"]).delete(f"/api/v1/auth/sign-ins/{family.id}/")

    assert response.status_code == 404
    assert bearer(bobs["access"]).get("/api/v1/users/me/").status_code == 200


def test_signing_out_everywhere_empties_the_list_and_is_recorded(alice):
    phone = api_sign_in(PHONE)
    laptop = api_sign_in(LAPTOP)
    bearer(laptop["access"]).post(
        "/api/v1/auth/logout/", {"refresh": laptop["refresh"], "everywhere": True}, format="json"
    )
    fresh = api_sign_in(LAPTOP)

    body = bearer(fresh["access"]).get("/api/v1/auth/security/").json()

    assert len(body["sign_ins"]) == 1
    assert "signed_out_everywhere" in [event["kind"] for event in body["events"]]
    assert bearer(phone["access"]).get("/api/v1/users/me/").status_code == 401


def test_the_profile_shows_where_you_are_signed_in_and_ends_one(alice):
    api_sign_in(PHONE)
    client = Client(HTTP_USER_AGENT=LAPTOP)
    client.force_login(alice)

    page = client.get("/profile/")
    assert b"Where you're signed in" in page.content
    assert PHONE.encode() in page.content
    assert b"Signed in (api)" in page.content

    family = TokenFamily.objects.get(user=alice)
    response = client.post("/profile/", {"form": "end-sign-in", "sign_in": family.id.hex})

    assert response.status_code == 302
    family.refresh_from_db()
    assert family.revoked_at is not None
    assert PHONE.encode() not in client.get("/profile/").content.split(b"Recent activity")[0]


def test_the_profile_refuses_a_malformed_sign_in_id_without_an_error(alice):
    client = Client()
    client.force_login(alice)

    response = client.post("/profile/", {"form": "end-sign-in", "sign_in": "not-an-id"}, follow=True)

    assert response.status_code == 200
    assert b"already ended" in response.content
