"""Notification preferences: the caller's own, and their level and mute per room."""

from __future__ import annotations

import pytest

from rooms import services as room_services

pytestmark = pytest.mark.django_db

PREFERENCES = "/api/v1/users/me/preferences/"


def test_preferences_start_at_the_defaults(alice, client_for) -> None:
    response = client_for(alice).get(PREFERENCES)
    assert response.status_code == 200
    assert response.json() == {
        "push": True,
        "email": True,
        "email_delay_seconds": 120,
        "dnd_until": None,
        "share_read_receipts": True,
        "timezone": "UTC",
    }


def test_patch_changes_only_the_preferences_given(alice, client_for) -> None:
    client = client_for(alice)
    response = client.patch(
        PREFERENCES, {"email": False, "dnd_until": "2030-01-02T03:04:05Z", "timezone": "Europe/Paris"}, format="json"
    )
    assert response.status_code == 200, response.json()
    body = client.get(PREFERENCES).json()
    assert body["email"] is False
    assert body["dnd_until"] == "2030-01-02T03:04:05Z"
    assert body["timezone"] == "Europe/Paris"
    assert body["push"] is True
    assert body["email_delay_seconds"] == 120


def test_preferences_are_each_persons_own(alice, bob, client_for) -> None:
    client_for(alice).patch(PREFERENCES, {"push": False}, format="json")
    assert client_for(bob).get(PREFERENCES).json()["push"] is True


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"email_delay_seconds": -1}, "email_delay_seconds"),
        ({"push": "yes"}, "push"),
        ({"volume": 11}, "volume"),
        ({"dnd_until": "tomorrow"}, "dnd_until"),
    ],
)
def test_bad_preferences_are_refused_and_change_nothing(alice, client_for, change, field) -> None:
    client = client_for(alice)
    before = client.get(PREFERENCES).json()
    response = client.patch(PREFERENCES, change, format="json")
    assert response.status_code == 400
    assert field in str(response.json())
    assert client.get(PREFERENCES).json() == before


def test_preferences_need_a_signed_in_user(anon) -> None:
    assert anon.get(PREFERENCES).status_code == 401


def test_a_dm_defaults_to_all_and_a_channel_to_mentions(alice, bob, lobby, client_for) -> None:
    dm, _ = room_services.direct_open(creator=alice, user_ids=[bob.pk])
    client = client_for(bob)
    assert client.get(f"/api/v1/rooms/{lobby.pk}/notifications/").json() == {
        "room": lobby.pk,
        "level": "mentions",
        "muted_until": None,
    }
    assert client.get(f"/api/v1/rooms/{dm.pk}/notifications/").json()["level"] == "all"


def test_a_member_sets_their_level_and_mute_and_the_room_shows_them(bob, lobby, client_for) -> None:
    client = client_for(bob)
    url = f"/api/v1/rooms/{lobby.pk}/notifications/"
    response = client.patch(url, {"level": "all"}, format="json")
    assert response.status_code == 200
    assert response.json()["level"] == "all"
    response = client.patch(url, {"muted_until": "2030-05-06T07:08:09Z"}, format="json")
    assert response.json() == {"room": lobby.pk, "level": "all", "muted_until": "2030-05-06T07:08:09Z"}

    room = client.get(f"/api/v1/rooms/{lobby.pk}/").json()
    assert room["notify_level"] == "all"
    assert room["muted_until"] == "2030-05-06T07:08:09Z"

    client.patch(url, {"muted_until": None}, format="json")
    assert client.get(url).json()["muted_until"] is None


def test_another_members_settings_stay_theirs(alice, bob, lobby, client_for) -> None:
    client_for(bob).patch(f"/api/v1/rooms/{lobby.pk}/notifications/", {"level": "none"}, format="json")
    assert client_for(alice).get(f"/api/v1/rooms/{lobby.pk}/").json()["notify_level"] == "mentions"


@pytest.mark.parametrize("body", [{"level": "loud"}, {"level": None}, {"level": 1}, {"muted_until": "soon"}, {"x": 1}])
def test_an_unknown_level_or_field_is_a_400(bob, lobby, client_for, body) -> None:
    response = client_for(bob).patch(f"/api/v1/rooms/{lobby.pk}/notifications/", body, format="json")
    assert response.status_code == 400


def test_outsiders_cannot_see_or_set_a_private_rooms_notifications(bob, secret, client_for) -> None:
    url = f"/api/v1/rooms/{secret.pk}/notifications/"
    assert client_for(bob).get(url).status_code == 404
    assert client_for(bob).patch(url, {"level": "all"}, format="json").status_code == 404
