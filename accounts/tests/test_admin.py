"""The Django admin's accounts pages go through accounts.services: logged with a reason, never a bare row."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

from accounts.models import ModerationAction, User
from accounts.services import tokens_for
from chatproject.tests.security.admin_forms import act, add, change, form_errors, staff_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(make_user):  # type: ignore[no-untyped-def]
    return make_user("root", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(root):  # type: ignore[no-untyped-def]
    return staff_client(root)


def logged(action: str) -> ModerationAction:
    return ModerationAction.objects.get(action=action)


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


def test_unticking_active_in_the_change_form_deactivates_through_the_service(admin_client, bob, root):
    response = change(admin_client, "accounts/user", bob.pk, is_active=False, reason="asked to leave")

    assert form_errors(response) is None
    bob.refresh_from_db()
    assert not bob.is_active
    entry = logged(ModerationAction.Kind.USER_DEACTIVATE)
    assert (entry.actor, entry.target_user, entry.reason, entry.via) == (root, bob, "asked to leave", "admin")


def test_a_change_without_a_reason_is_refused_and_nothing_changes(admin_client, bob):
    response = change(admin_client, "accounts/user", bob.pk, is_active=False)

    assert "reason" in form_errors(response)
    bob.refresh_from_db()
    assert bob.is_active
    assert not ModerationAction.objects.exists()


def test_ticking_active_again_reactivates_through_the_service(admin_client, bob, root):
    act(admin_client, "accounts/user", "deactivate_accounts", [bob.pk], "cooling off")

    response = change(admin_client, "accounts/user", bob.pk, is_active=True, reason="served the time")

    assert form_errors(response) is None
    bob.refresh_from_db()
    assert bob.is_active
    assert logged(ModerationAction.Kind.USER_REACTIVATE).reason == "served the time"


def test_a_display_name_changed_in_the_admin_is_logged_with_what_changed(admin_client, bob):
    response = change(admin_client, "accounts/user", bob.pk, display_name="Robert", reason="impersonation")

    assert form_errors(response) is None
    bob.refresh_from_db()
    assert bob.display_name == "Robert"
    entry = logged(ModerationAction.Kind.USER_UPDATE)
    assert (entry.reason, entry.detail) == ("impersonation", "display name: 'Bob' → 'Robert'")


def test_admin_access_granted_in_the_admin_is_logged(admin_client, bob):
    moderators = Group.objects.create(name="moderators")

    response = change(admin_client, "accounts/user", bob.pk, is_staff=True, groups=[moderators.pk], reason="new mod")

    assert form_errors(response) is None
    bob.refresh_from_db()
    assert bob.is_staff
    assert list(bob.groups.all()) == [moderators]
    entry = logged(ModerationAction.Kind.USER_UPDATE)
    assert (entry.reason, entry.detail) == ("new mod", "staff: True, superuser: False; groups: moderators")


def test_the_username_and_email_are_not_edited_in_the_admin(admin_client, bob):
    response = change(
        admin_client,
        "accounts/user",
        bob.pk,
        username="robert",
        email="robert@example.com",
        display_name="Rob",
        reason="typo",
    )

    assert form_errors(response) is None
    bob.refresh_from_db()
    assert (bob.username, bob.email, bob.display_name) == ("bob", "bob@example.com", "Rob")


def test_an_account_added_in_the_admin_is_registered_through_the_service_and_logged(admin_client, root):
    response = add(
        admin_client,
        "accounts/user",
        username="newcomer",
        email="newcomer@example.com",
        display_name="New",
        password1="a long enough passphrase",
        password2="a long enough passphrase",
        reason="onboarding",
    )

    assert form_errors(response) is None
    user = User.objects.get(username="newcomer")
    assert (user.email, user.display_name, user.check_password("a long enough passphrase")) == (
        "newcomer@example.com",
        "New",
        True,
    )
    entry = logged(ModerationAction.Kind.USER_CREATE)
    assert (entry.actor, entry.target_user, entry.reason) == (root, user, "onboarding")


def test_an_account_with_a_bad_name_or_address_is_shown_again_with_why(admin_client):
    response = add(
        admin_client,
        "accounts/user",
        username="-bad-",
        email="not an address",
        password1="a long enough passphrase",
        password2="a long enough passphrase",
        reason="onboarding",
    )

    assert form_errors(response)
    assert not User.objects.filter(email="not an address").exists()


def test_accounts_are_never_deleted_in_the_admin(admin_client, bob):
    assert admin_client.get(f"/admin/accounts/user/{bob.pk}/delete/").status_code == 403
    act(admin_client, "accounts/user", "delete_selected", [bob.pk], post="yes")

    assert User.objects.filter(pk=bob.pk, is_active=True).exists()


def test_erasure_takes_the_old_name_out_of_the_admins_change_history(admin_client, bob):
    change(admin_client, "accounts/user", bob.pk, display_name="Bobby", reason="typo")
    assert LogEntry.objects.filter(object_repr="bob").exists()

    act(admin_client, "accounts/user", "erase_accounts", [bob.pk], "request 7", confirmed="yes")

    assert not LogEntry.objects.filter(object_repr="bob").exists()
    assert not ModerationAction.objects.filter(target_username="bob").exists()


def test_erasure_asks_for_confirmation_first(admin_client, bob):
    response = act(admin_client, "accounts/user", "erase_accounts", [bob.pk], "request 7")

    assert b"cannot be undone" in response.content
    bob.refresh_from_db()
    assert bob.erased_at is None and bob.username == "bob"


def test_an_erased_account_is_not_reactivated(admin_client, bob):
    act(admin_client, "accounts/user", "erase_accounts", [bob.pk], "request 7", confirmed="yes")

    act(admin_client, "accounts/user", "reactivate_accounts", [bob.pk], "changed my mind")

    bob.refresh_from_db()
    assert not bob.is_active


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


def test_a_revoked_token_cannot_be_brought_back_from_the_admin(admin_client, bob):
    tokens = tokens_for(bob)
    APIClient().post("/api/v1/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json")
    blacklisted = BlacklistedToken.objects.get(token__user=bob)

    assert (
        admin_client.post(
            f"/admin/token_blacklist/blacklistedtoken/{blacklisted.pk}/delete/", {"post": "yes"}
        ).status_code
        == 403
    )
    assert admin_client.get("/admin/token_blacklist/blacklistedtoken/add/").status_code == 403

    assert BlacklistedToken.objects.filter(pk=blacklisted.pk).exists()
