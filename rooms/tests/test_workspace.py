"""A new workspace is not empty: the first account runs the server, #general and the default channels,
and a channel that starts with the people picked for it."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections
from rest_framework.test import APIClient

from accounts.models import User
from accounts.services import user_register
from core.errors import Invalid
from rooms import services
from rooms.events import Event
from rooms.models import Membership, Room

API = "/api/v1"
PASSWORD = "a sturdy passphrase 42"


def register(username: str) -> User:
    return user_register(username=username, email=f"{username}@example.com", password=PASSWORD)


def channel_slugs(user: User) -> list[str]:
    return sorted(
        Membership.objects.filter(user=user, room__deleted_at__isnull=True).values_list("room__slug", flat=True)
    )


# --- The first account -------------------------------------------------------------------


def test_first_registered_account_becomes_the_servers_admin(anon: APIClient, db: None) -> None:
    response = anon.post(
        f"{API}/auth/register/",
        {"username": "founder", "email": "founder@example.com", "password": PASSWORD},
        format="json",
    )

    assert response.status_code == 201
    founder = User.objects.get(username="founder")
    assert (founder.is_staff, founder.is_superuser) == (True, True)


def test_later_accounts_are_not_admins(db: None) -> None:
    register("founder")

    second = register("second")

    assert (second.is_staff, second.is_superuser) == (False, False)


def test_an_account_registered_after_existing_ones_is_not_made_admin(alice: User) -> None:
    newcomer = register("newcomer")

    assert not newcomer.is_staff


def test_first_account_opens_general_as_its_owner_and_a_default_channel(db: None) -> None:
    founder = register("founder")

    general = Room.objects.get(slug="general", deleted_at__isnull=True)
    assert (general.visibility, general.is_default) == ("public", True)
    assert Membership.objects.get(room=general, user=founder).role == "owner"
    assert Event.objects.filter(room_id=general.pk, type=Event.Type.ROOM_CREATED).count() == 1


def test_new_accounts_join_general_with_a_recorded_join(db: None) -> None:
    register("founder")

    newcomer = register("newcomer")

    general = Room.objects.get(slug="general")
    assert channel_slugs(newcomer) == ["general"]
    assert Event.objects.filter(room_id=general.pk, type=Event.Type.MEMBER_JOINED, user_id=newcomer.pk).count() == 1


def test_general_is_not_opened_again_when_a_channel_of_that_name_exists(alice: User) -> None:
    services.room_create(creator=alice, name="general")
    User.objects.all().delete()  # a server whose accounts were removed, but whose channel stays
    Room.objects.update(created_by=None)

    register("founder")

    assert Room.objects.filter(slug="general", deleted_at__isnull=True).count() == 1


def test_new_accounts_join_every_default_channel_and_no_other(alice: User, staff: User) -> None:
    announcements = services.room_create(creator=alice, name="Announcements")
    services.room_create(creator=alice, name="Random")
    services.room_update(actor=staff, room=announcements, is_default=True, site_moderator=True)

    newcomer = register("newcomer")

    assert channel_slugs(newcomer) == ["announcements"]


def test_a_deleted_default_channel_is_not_joined(alice: User, staff: User) -> None:
    room = services.room_create(creator=alice, name="Old news")
    services.room_update(actor=staff, room=room, is_default=True, site_moderator=True)
    services.room_delete(actor=alice, room=room)

    assert channel_slugs(register("newcomer")) == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.services("postgres")
def test_two_first_registrations_at_once_make_exactly_one_admin() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SQLite runs one writing transaction at a time; the race needs PostgreSQL")
    barrier = threading.Barrier(2, timeout=10)
    errors: list[BaseException] = []

    def register_racing(username: str) -> None:
        try:
            barrier.wait()
            register(username)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=register_racing, args=(name,)) for name in ("first", "other")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not errors
    assert User.objects.filter(is_superuser=True, is_staff=True).count() == 1
    assert Room.objects.filter(slug="general").count() == 1


# --- Default channels through the API and the admin --------------------------------------


def test_staff_mark_a_channel_default_over_the_api(client_for, lobby: Room, staff: User) -> None:  # type: ignore[no-untyped-def]
    response = client_for(staff).patch(f"{API}/rooms/{lobby.pk}/", {"is_default": True}, format="json")

    assert response.status_code == 200
    assert response.json()["is_default"] is True
    lobby.refresh_from_db()
    assert lobby.is_default
    assert Event.objects.filter(room_id=lobby.pk, type=Event.Type.ROOM_UPDATED).exists()


def test_a_channel_owner_who_is_not_staff_cannot_mark_it_default(client_for, lobby: Room, alice: User) -> None:  # type: ignore[no-untyped-def]
    response = client_for(alice).patch(f"{API}/rooms/{lobby.pk}/", {"is_default": True}, format="json")

    assert response.status_code == 403
    assert "staff" in response.json()["detail"]
    lobby.refresh_from_db()
    assert not lobby.is_default


def test_a_private_channel_cannot_be_a_default_one(secret: Room, staff: User) -> None:
    with pytest.raises(Invalid) as refused:
        services.room_update(actor=staff, room=secret, is_default=True, site_moderator=True)

    assert "is_default" in refused.value.detail  # type: ignore[operator]
    secret.refresh_from_db()
    assert not secret.is_default


def test_room_payload_says_whether_it_is_default(client_for, lobby: Room, alice: User) -> None:  # type: ignore[no-untyped-def]
    assert client_for(alice).get(f"{API}/rooms/{lobby.pk}/").json()["is_default"] is False


def test_admin_marks_a_channel_default_through_the_service(client, lobby: Room, make_user) -> None:  # type: ignore[no-untyped-def]
    admin = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(admin)

    response = client.post(
        f"/admin/rooms/room/{lobby.pk}/change/",
        {
            "name": lobby.name,
            "topic": lobby.topic,
            "visibility": "public",
            "is_default": "on",
            "reason": "everyone should see it",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 302, response.content[:2000]
    lobby.refresh_from_db()
    assert lobby.is_default
    assert Event.objects.filter(room_id=lobby.pk, type=Event.Type.ROOM_UPDATED).exists()


# --- A channel created with its first members ---------------------------------------------


def test_create_private_channel_with_its_first_members(client_for, alice: User, bob: User, carol: User) -> None:  # type: ignore[no-untyped-def]
    response = client_for(alice).post(
        f"{API}/rooms/",
        {"name": "Plans", "visibility": "private", "members": [bob.pk, carol.pk, bob.pk, alice.pk]},
        format="json",
    )

    assert response.status_code == 201
    body = response.json()
    assert body["member_count"] == 3
    room_id = body["id"]
    roles = dict(Membership.objects.filter(room_id=room_id).values_list("user__username", "role"))
    assert roles == {"alice": "owner", "bob": "member", "carol": "member"}
    joined = Event.objects.filter(room_id=room_id, type=Event.Type.MEMBER_JOINED).values_list("user_id", flat=True)
    assert sorted(joined) == sorted([bob.pk, carol.pk])


def test_unknown_members_are_refused_by_id_and_nothing_is_created(client_for, alice: User, bob: User) -> None:  # type: ignore[no-untyped-def]
    bob.is_active = False
    bob.save(update_fields=["is_active"])

    response = client_for(alice).post(
        f"{API}/rooms/", {"name": "Plans", "visibility": "private", "members": [bob.pk, 999_999]}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["members"] == [f"No such users: {bob.pk}, 999999."]
    assert not Room.objects.filter(slug="plans").exists()


@pytest.mark.parametrize("members", ["3", [0], ["x"], [None], {"id": 3}])
def test_malformed_members_are_a_400(client_for, alice: User, members: object) -> None:  # type: ignore[no-untyped-def]
    response = client_for(alice).post(f"{API}/rooms/", {"name": "Plans", "members": members}, format="json")

    assert response.status_code == 400
    assert "members" in response.json()
    assert not Room.objects.filter(slug="plans").exists()
