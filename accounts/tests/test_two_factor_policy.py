"""Two-factor sign-in and the admin: REQUIRE_2FA_FOR_STAFF, who has it, and staff resetting someone's."""

from __future__ import annotations

from types import SimpleNamespace

import pyotp
import pytest
from django.test import Client

from accounts import mfa
from accounts.models import ModerationAction, RecoveryCode, SecurityLogEntry, TotpDevice, User
from chatproject.tests.security.admin_forms import act, staff_client
from conftest import PASSWORD
from core.errors import Invalid

pytestmark = pytest.mark.django_db

NOW = 1_800_000_000.0


@pytest.fixture(autouse=True)
def clock(monkeypatch):  # type: ignore[no-untyped-def]
    state = SimpleNamespace(now=NOW)
    monkeypatch.setattr(mfa, "time", SimpleNamespace(time=lambda: state.now))
    return state


@pytest.fixture
def root(make_user):  # type: ignore[no-untyped-def]
    return make_user("root", is_staff=True, is_superuser=True)


def turn_on(user: User, clock: SimpleNamespace) -> str:
    secret = mfa.totp_begin(user=user).secret
    mfa.totp_confirm(user=user, code=pyotp.TOTP(secret).at(clock.now))
    clock.now += 30
    return secret


def test_with_the_policy_on_staff_without_two_factor_are_sent_to_set_it_up(root, settings):
    settings.REQUIRE_2FA_FOR_STAFF = True
    client = staff_client(root)

    response = client.get("/admin/accounts/user/")

    assert response.status_code == 302
    assert response["Location"] == "/profile/two-factor/?next=%2Fadmin%2Faccounts%2Fuser%2F"
    page = client.get(response["Location"])
    assert b"Staff must turn on two-factor sign-in before using the admin." in page.content
    assert b'name="next" value="/admin/accounts/user/"' in page.content


def test_with_the_policy_on_staff_with_two_factor_reach_the_admin(root, settings, clock):
    settings.REQUIRE_2FA_FOR_STAFF = True
    turn_on(root, clock)

    assert staff_client(root).get("/admin/accounts/user/").status_code == 200


def test_with_the_policy_on_the_chat_stays_open_to_staff_without_two_factor(root, settings):
    settings.REQUIRE_2FA_FOR_STAFF = True

    assert staff_client(root).get("/").status_code == 200


def test_with_the_policy_off_staff_reach_the_admin_without_two_factor(root, settings):
    settings.REQUIRE_2FA_FOR_STAFF = False

    assert staff_client(root).get("/admin/accounts/user/").status_code == 200


def test_the_admins_password_only_login_refuses_an_account_with_two_factor(root, clock):
    turn_on(root, clock)
    client = Client()

    response = client.post("/admin/login/?next=/admin/", {"username": "root", "password": PASSWORD})

    assert response.status_code == 200
    assert b"Two-factor sign-in is on for this account" in response.content
    assert client.get("/admin/").status_code == 302


def test_the_admin_lists_who_has_two_factor_and_filters_by_it(root, alice, bob, clock):
    turn_on(alice, clock)
    client = staff_client(root)

    page = client.get("/admin/accounts/user/")
    assert b"2FA" in page.content
    with_it = client.get("/admin/accounts/user/?two_factor=on")
    without = client.get("/admin/accounts/user/?two_factor=off")

    assert [user.username for user in with_it.context["cl"].result_list] == ["alice"]
    assert {user.username for user in without.context["cl"].result_list} == {"bob", "root"}


def test_staff_reset_someones_two_factor_with_a_reason_in_the_moderation_log(root, alice, clock):
    turn_on(alice, clock)
    version = alice.token_version

    page = act(staff_client(root), "accounts/user", "reset_two_factor", [alice.pk], reason="lost phone, ID checked")

    assert page.status_code == 200
    assert not mfa.mfa_enabled(alice)
    assert not RecoveryCode.objects.filter(user=alice).exists()
    entry = ModerationAction.objects.get(action=ModerationAction.Kind.USER_MFA_RESET)
    assert (entry.actor, entry.target_user, entry.reason, entry.via) == (root, alice, "lost phone, ID checked", "admin")
    alice.refresh_from_db()
    assert alice.token_version == version + 1  # signed out everywhere
    assert SecurityLogEntry.objects.filter(user=alice, kind=SecurityLogEntry.Kind.TOTP_RESET).exists()


def test_a_reset_without_a_reason_changes_nothing(root, alice, clock):
    turn_on(alice, clock)

    act(staff_client(root), "accounts/user", "reset_two_factor", [alice.pk], reason="")

    assert mfa.mfa_enabled(alice)
    assert not ModerationAction.objects.exists()


def test_staff_cannot_reset_their_own_two_factor_without_a_code(root, clock):
    turn_on(root, clock)

    with pytest.raises(Invalid):
        mfa.mfa_reset(user=root, actor=root, reason="me")

    assert TotpDevice.objects.filter(user=root).exists()
