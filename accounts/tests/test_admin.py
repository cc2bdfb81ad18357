"""The Django admin's account actions go through the same service as everything else."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

from accounts.services import tokens_for


@pytest.fixture
def admin_client(make_user):  # type: ignore[no-untyped-def]
    superuser = make_user("root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(superuser)
    return client


def test_deactivate_action_deactivates_and_revokes_refresh_tokens(admin_client, bob, capture_events):
    tokens_for(bob)
    with capture_events():
        response = admin_client.post(
            "/admin/accounts/user/",
            {"action": "deactivate_accounts", "_selected_action": [bob.pk], "reason": "spam bot"},
        )
    assert response.status_code == 302
    bob.refresh_from_db()
    assert not bob.is_active
    assert BlacklistedToken.objects.filter(token__user=bob).count() == 1


def test_unticking_active_in_the_change_form_deactivates_through_the_service(admin_client, bob, monkeypatch):
    calls = []
    monkeypatch.setattr("accounts.admin.user_deactivate", lambda *, user, **context: calls.append(user.pk))
    page = admin_client.get(f"/admin/accounts/user/{bob.pk}/change/")
    form = page.context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name != "password"}
    data.update(
        {
            "username": "bob",
            "email": "bob@example.com",
            "display_name": "Bob",
            "date_joined_0": bob.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": bob.date_joined.strftime("%H:%M:%S"),
            "groups": [],
            "user_permissions": [],
        }
    )
    data.pop("is_active", None)
    data.pop("last_login", None)
    response = admin_client.post(f"/admin/accounts/user/{bob.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    assert calls == [bob.pk]


@pytest.mark.parametrize("usable", [True, False])
def test_an_admin_password_reset_ends_every_sign_in_of_the_account(admin_client, bob, usable):
    tokens = tokens_for(bob)
    new_password = "another fresh passphrase 7"
    body = {"password1": new_password, "password2": new_password, "usable_password": "true" if usable else "false"}
    if not usable:
        body = {"usable_password": "false", "unset-password": "1"}
    response = admin_client.post(f"/admin/accounts/user/{bob.pk}/password/", body)
    assert response.status_code == 302
    bob.refresh_from_db()
    assert bob.has_usable_password() is usable
    api = APIClient(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert api.get("/api/v1/users/me/").status_code == 401
    refreshed = APIClient().post("/api/v1/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json")
    assert refreshed.status_code == 401
