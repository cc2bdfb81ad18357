"""The event record of rooms.services: one Event row per action, published only after commit."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection, transaction

from accounts.services import user_deactivate, user_update_profile
from core import publish
from core.errors import Forbidden, Invalid, NotFound
from messaging.services import message_post, read_mark
from rooms import services
from rooms.events import Event
from rooms.models import Membership, Room
from rooms.selectors import room_list_for_member


class Boom(Exception):
    """Raised inside a transaction to roll it back."""


@dataclass
class Cast:
    alice: Any
    bob: Any
    carol: Any
    mallory: Any
    lobby: Room
    first: Any
    second: Any


@pytest.fixture
def cast(alice, bob, carol, mallory, lobby) -> Cast:  # type: ignore[no-untyped-def]
    first, _ = message_post(room=lobby, author=alice, body="first")
    second, _ = message_post(room=lobby, author=alice, body="second")
    return Cast(alice, bob, carol, mallory, lobby, first, second)


def new_events(after: int) -> list[Event]:
    return list(Event.objects.filter(id__gt=after).order_by("id"))


def last_event_id() -> int:
    return Event.objects.order_by("-id").values_list("id", flat=True).first() or 0


# Each action of rooms.services, and the one event type it records.
ACTIONS: dict[str, tuple[Callable[[Cast], object], str]] = {
    "room_create": (lambda c: services.room_create(creator=c.bob, name="Dev"), "room.created"),
    "room_update": (lambda c: services.room_update(actor=c.carol, room=c.lobby, topic="New"), "room.updated"),
    "room_delete": (lambda c: services.room_delete(actor=c.alice, room=c.lobby), "room.deleted"),
    "room_join": (lambda c: services.room_join(user=c.mallory, room=c.lobby), "member.joined"),
    "room_leave": (lambda c: services.room_leave(user=c.bob, room=c.lobby), "member.left"),
    "member_add": (
        lambda c: services.member_add(actor=c.carol, room=c.lobby, user_id=c.mallory.pk),
        "member.joined",
    ),
    "member_set_role": (
        lambda c: services.member_set_role(actor=c.alice, room=c.lobby, user_id=c.bob.pk, role="admin"),
        "member.role",
    ),
    "member_kick": (lambda c: services.member_kick(actor=c.carol, room=c.lobby, user_id=c.bob.pk), "member.left"),
    "member_ban": (lambda c: services.member_ban(actor=c.carol, room=c.lobby, user_id=c.bob.pk), "member.left"),
    "direct_open": (lambda c: services.direct_open(creator=c.bob, user_ids=[c.mallory.pk]), "room.created"),
    "read_mark": (lambda c: read_mark(user=c.bob, room=c.lobby, message_id=c.second.pk), "read"),
}


@pytest.mark.parametrize("action", list(ACTIONS))
def test_each_action_records_exactly_one_event_and_publishes_it_after_commit(cast, capture_events, action):
    run, event_type = ACTIONS[action]
    before = last_event_id()

    with capture_events() as published:
        run(cast)
        assert published == [], "published before commit"

    [event] = new_events(before)
    assert event.type == event_type
    assert [(item.id, item.type) for item in published] == [(event.id, event_type)]


@pytest.mark.parametrize("action", list(ACTIONS))
def test_each_action_rolled_back_records_and_publishes_nothing(cast, capture_events, action):
    run, _ = ACTIONS[action]
    before = last_event_id()
    memberships = sorted(Membership.objects.values_list("room_id", "user_id", "role", "last_read_message_id"))
    rooms = sorted(Room.objects.values_list("id", "name", "topic", "deleted_at"))

    with capture_events() as published, pytest.raises(Boom), transaction.atomic():
        run(cast)
        raise Boom

    assert new_events(before) == []
    assert published == []
    assert sorted(Membership.objects.values_list("room_id", "user_id", "role", "last_read_message_id")) == memberships
    assert sorted(Room.objects.values_list("id", "name", "topic", "deleted_at")) == rooms


def test_event_ids_grow_in_commit_order(cast, capture_events):
    c = cast
    with capture_events() as published:
        services.room_join(user=c.mallory, room=c.lobby)
    with capture_events() as more:
        services.room_update(actor=c.alice, room=c.lobby, name="Hall")
    with capture_events() as last:
        services.member_kick(actor=c.alice, room=c.lobby, user_id=c.mallory.pk)

    ids = [event.id for event in published + more + last]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    assert [event.type for event in new_events(ids[0] - 1)] == ["member.joined", "room.updated", "member.left"]


@pytest.mark.services("postgres")
@pytest.mark.django_db(transaction=True)
def test_an_event_recorded_later_commits_later_even_when_its_transaction_is_faster(alice, bob, carol):
    room = services.room_create(creator=alice, name="Race")
    bob_recorded = threading.Event()
    release_bob = threading.Event()
    committed: list[int] = []
    errors: list[BaseException] = []

    def slow_join() -> None:
        try:
            with transaction.atomic():
                membership, _ = services.room_join(user=bob, room=room)
                bob_recorded.set()
                release_bob.wait(5)
            committed.append(membership.joined_event_id)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            bob_recorded.set()
            connection.close()

    def fast_join() -> None:
        try:
            bob_recorded.wait(5)
            membership, _ = services.room_join(user=carol, room=room)
            committed.append(membership.joined_event_id)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=slow_join), threading.Thread(target=fast_join)]
    for thread in threads:
        thread.start()
    bob_recorded.wait(5)
    # Give carol's join time to reach the event lock, then let bob commit.
    threading.Event().wait(0.3)
    release_bob.set()
    for thread in threads:
        thread.join(10)

    assert errors == []
    assert len(committed) == 2
    assert committed == sorted(committed), "an event with a lower id committed after a higher one"


# --- Refused actions and no-ops record nothing -------------------------------------------------

NO_OPS: dict[str, Callable[[Cast], object]] = {
    "join-twice": lambda c: services.room_join(user=c.bob, room=c.lobby),
    "add-existing-member": lambda c: services.member_add(actor=c.alice, room=c.lobby, user_id=c.bob.pk),
    "same-role": lambda c: services.member_set_role(actor=c.alice, room=c.lobby, user_id=c.carol.pk, role="admin"),
    "same-topic": lambda c: services.room_update(actor=c.alice, room=c.lobby, topic="Say hi"),
    "same-name": lambda c: services.room_update(actor=c.alice, room=c.lobby, name="Lobby"),
    "nothing-to-update": lambda c: services.room_update(actor=c.alice, room=c.lobby),
    "reopen-dm": lambda c: services.direct_open(creator=c.bob, user_ids=[c.alice.pk]),
    "read-back": lambda c: read_mark(user=c.bob, room=c.lobby, message_id=c.first.pk),
    "read-same": lambda c: read_mark(user=c.bob, room=c.lobby, message_id=c.second.pk),
    "ban-non-member": lambda c: services.member_ban(actor=c.alice, room=c.lobby, user_id=c.mallory.pk),
    "unban": lambda c: services.member_unban(actor=c.alice, room=c.lobby, user_id=c.mallory.pk),
}


@pytest.mark.parametrize("no_op", list(NO_OPS))
def test_an_action_that_changes_nothing_clients_see_records_no_event(cast, capture_events, no_op):
    services.direct_open(creator=cast.alice, user_ids=[cast.bob.pk])
    read_mark(user=cast.bob, room=cast.lobby, message_id=cast.second.pk)
    if no_op == "unban":
        services.member_ban(actor=cast.alice, room=cast.lobby, user_id=cast.mallory.pk)
    before = last_event_id()

    with capture_events() as published:
        NO_OPS[no_op](cast)

    assert new_events(before) == []
    assert published == []


def test_read_marker_moving_back_keeps_the_later_marker(cast):
    assert read_mark(user=cast.bob, room=cast.lobby, message_id=cast.second.pk) is True
    assert read_mark(user=cast.bob, room=cast.lobby, message_id=cast.first.pk) is False

    assert Membership.objects.get(room=cast.lobby, user=cast.bob).last_read_message_id == cast.second.pk


REFUSED: dict[str, tuple[Callable[[Cast], object], type[Exception]]] = {
    "duplicate-name": (lambda c: services.room_create(creator=c.bob, name="lobby"), Invalid),
    "member-renames": (lambda c: services.room_update(actor=c.bob, room=c.lobby, name="Mine"), Forbidden),
    "admin-deletes": (lambda c: services.room_delete(actor=c.carol, room=c.lobby), Forbidden),
    "outsider-leaves": (lambda c: services.room_leave(user=c.mallory, room=c.lobby), Forbidden),
    "member-adds": (lambda c: services.member_add(actor=c.bob, room=c.lobby, user_id=c.mallory.pk), Forbidden),
    "admin-kicks-owner": (lambda c: services.member_kick(actor=c.carol, room=c.lobby, user_id=c.alice.pk), Forbidden),
    "admin-bans-owner": (lambda c: services.member_ban(actor=c.carol, room=c.lobby, user_id=c.alice.pk), Forbidden),
    "last-owner-steps-down": (
        lambda c: services.member_set_role(actor=c.alice, room=c.lobby, user_id=c.alice.pk, role="member"),
        Invalid,
    ),
    "outsider-reads": (lambda c: read_mark(user=c.mallory, room=c.lobby, message_id=c.first.pk), Forbidden),
    "unknown-dm-user": (lambda c: services.direct_open(creator=c.bob, user_ids=[999_999]), Invalid),
    "kick-non-member": (lambda c: services.member_kick(actor=c.alice, room=c.lobby, user_id=c.mallory.pk), NotFound),
}


@pytest.mark.parametrize("refused", list(REFUSED))
def test_a_refused_action_records_and_publishes_nothing(cast, capture_events, refused):
    run, error = REFUSED[refused]
    before = last_event_id()

    with capture_events() as published, pytest.raises(error):
        run(cast)

    assert new_events(before) == []
    assert published == []


def test_banned_user_rejoining_is_refused_without_an_event(cast, capture_events):
    services.member_ban(actor=cast.alice, room=cast.lobby, user_id=cast.bob.pk)
    before = last_event_id()

    with capture_events() as published, pytest.raises(Forbidden):
        services.room_join(user=cast.bob, room=cast.lobby)

    assert new_events(before) == []
    assert published == []


# --- What the events say -----------------------------------------------------------------------


def test_join_event_names_the_member_and_the_room(cast, capture_events):
    with capture_events() as published:
        services.room_join(user=cast.mallory, room=cast.lobby)

    [event] = published
    assert (event.room_id, event.user_id, event.actor_id) == (cast.lobby.pk, cast.mallory.pk, cast.mallory.pk)
    assert event.payload["user"]["username"] == "mallory"
    assert event.payload["room"]["id"] == cast.lobby.pk
    assert event.payload["room"]["member_count"] == 4


@pytest.mark.parametrize(
    ("action", "reason"), [("room_leave", "left"), ("member_kick", "kicked"), ("member_ban", "banned")]
)
def test_leave_kick_and_ban_events_say_why_the_member_left(cast, capture_events, action, reason):
    with capture_events() as published:
        ACTIONS[action][0](cast)

    [event] = published
    assert event.user_id == cast.bob.pk
    assert event.payload["reason"] == reason


def test_role_event_carries_the_new_role(cast, capture_events):
    with capture_events() as published:
        services.member_set_role(actor=cast.alice, room=cast.lobby, user_id=cast.bob.pk, role="admin")

    [event] = published
    assert (event.user_id, event.actor_id, event.payload["role"]) == (cast.bob.pk, cast.alice.pk, "admin")


def test_read_event_is_private_to_the_reader(cast, capture_events):
    with capture_events() as published:
        read_mark(user=cast.bob, room=cast.lobby, message_id=cast.second.pk)

    [event] = published
    assert event.private is True
    assert event.user_id == cast.bob.pk
    assert event.payload == {"room": cast.lobby.pk, "message_id": cast.second.pk}


def test_room_update_event_carries_the_new_name_and_topic(cast, capture_events):
    with capture_events() as published:
        services.room_update(actor=cast.carol, room=cast.lobby, name="Hall", topic="Welcome")

    [event] = published
    assert (event.payload["room"]["name"], event.payload["room"]["topic"]) == ("Hall", "Welcome")


# --- Membership.joined_event_id ------------------------------------------------------------------


def test_creator_membership_points_at_the_room_created_event(alice, capture_events):
    with capture_events() as published:
        room = services.room_create(creator=alice, name="Dev")

    assert Membership.objects.get(room=room, user=alice).joined_event_id == published[0].id


@pytest.mark.parametrize("action", ["room_join", "member_add"])
def test_new_membership_points_at_its_join_event(cast, capture_events, action):
    with capture_events() as published:
        ACTIONS[action][0](cast)

    [event] = published
    assert Membership.objects.get(room=cast.lobby, user=cast.mallory).joined_event_id == event.id


def test_every_dm_membership_points_at_the_room_created_event(alice, bob, carol, capture_events):
    with capture_events() as published:
        room, _ = services.direct_open(creator=alice, user_ids=[bob.pk, carol.pk])

    [event] = published
    assert set(Membership.objects.filter(room=room).values_list("joined_event_id", flat=True)) == {event.id}


def test_rejoining_after_a_kick_points_at_the_new_join_event(cast):
    services.member_kick(actor=cast.alice, room=cast.lobby, user_id=cast.bob.pk)

    membership, created = services.room_join(user=cast.bob, room=cast.lobby)

    assert created is True
    assert membership.joined_event_id == last_event_id()
    assert Event.objects.get(pk=membership.joined_event_id).type == "member.joined"


# --- Publishing ----------------------------------------------------------------------------------


def test_a_failing_subscriber_neither_undoes_the_commit_nor_starves_the_others(alice, capture_events):
    def broken(event: Event) -> None:
        raise RuntimeError("socket layer down")

    stop = publish.subscribe(broken)
    try:
        with capture_events() as published:
            room = services.room_create(creator=alice, name="Dev")
    finally:
        stop()

    assert [event.type for event in published] == ["room.created"]
    assert Room.objects.filter(pk=room.pk).exists()


def test_first_joiner_of_a_channel_its_owner_left_empty_becomes_owner(alice, bob):
    room = services.room_create(creator=alice, name="Abandoned")
    services.room_leave(user=alice, room=room)

    membership, created = services.room_join(user=bob, room=room)

    assert created
    assert membership.role == "owner"


# --- Direct conversations ----------------------------------------------------------------------------


def test_adding_someone_to_a_1to1_dm_opens_a_group_dm_and_leaves_the_pair_alone(alice, bob, carol, capture_events):
    pair, _ = services.direct_open(creator=alice, user_ids=[bob.pk])
    before = last_event_id()

    with capture_events() as published:
        membership, created = services.member_add(actor=alice, room=pair, user_id=carol.pk)

    assert created
    group = membership.room
    assert group.pk != pair.pk and group.is_direct
    assert [(event.type, event.room_id) for event in published] == [("room.created", group.pk)]
    assert {member["id"] for member in published[0].payload["room"]["members"]} == {alice.pk, bob.pk, carol.pk}
    assert [event.room_id for event in new_events(before)] == [group.pk]
    assert set(Membership.objects.filter(room=pair).values_list("user_id", flat=True)) == {alice.pk, bob.pk}


# --- A channel always has an owner ---------------------------------------------------------------------


def _roles(room: Room) -> dict[str, str]:
    return dict(room.memberships.values_list("user__username", "role"))


def test_the_last_owner_leaving_hands_the_channel_to_the_longest_standing_admin_who_is_told(
    lobby, alice, carol, mallory, capture_events
):
    services.room_join(user=mallory, room=lobby)
    services.member_set_role(actor=alice, room=lobby, user_id=mallory.pk, role="admin")  # a newer admin

    with capture_events() as published:
        services.room_leave(user=alice, room=lobby)

    assert _roles(lobby) == {"bob": "member", "carol": "owner", "mallory": "admin"}
    assert [(event.type, event.user_id) for event in published] == [
        ("member.left", alice.pk),
        ("member.role", carol.pk),
    ]
    assert published[1].payload["role"] == "owner"


def test_without_admins_the_longest_standing_member_inherits(alice, bob, carol, capture_events):
    room = services.room_create(creator=alice, name="Dev")
    services.room_join(user=bob, room=room)
    services.room_join(user=carol, room=room)

    with capture_events() as published:
        services.room_leave(user=alice, room=room)

    assert _roles(room) == {"bob": "owner", "carol": "member"}
    assert [(event.type, event.user_id) for event in published][-1] == ("member.role", bob.pk)


def test_a_site_moderator_banning_the_last_owner_hands_the_channel_on(lobby, alice, carol, staff, capture_events):
    with capture_events() as published:
        services.member_ban(actor=staff, room=lobby, user_id=alice.pk, site_moderator=True, via="admin")

    assert _roles(lobby)["carol"] == "owner"
    assert ("member.role", carol.pk) in [(event.type, event.user_id) for event in published]


def test_deactivating_the_last_owner_hands_each_of_their_channels_on_with_an_event(
    lobby, secret, alice, bob, carol, staff, capture_events
):
    services.member_add(actor=alice, room=secret, user_id=bob.pk)
    services.member_set_role(actor=alice, room=secret, user_id=bob.pk, role="admin")
    shared = services.room_create(creator=carol, name="Shared")
    services.room_join(user=alice, room=shared)

    with capture_events() as published:
        user_deactivate(user=alice, actor=staff, reason="left the company")

    assert _roles(lobby)["carol"] == "owner"
    assert _roles(secret)["bob"] == "owner"
    assert _roles(shared)["carol"] == "owner"  # carol still owned it: nothing to hand on
    roles = [(event.type, event.room_id, event.user_id) for event in published]
    assert roles == [("member.role", lobby.pk, carol.pk), ("member.role", secret.pk, bob.pk)]
    assert all(event.actor_id == staff.pk for event in published)


def test_a_newcomer_never_becomes_owner_of_a_channel_that_still_has_members(lobby, alice, bob, carol, mallory):
    # An owner's membership deleted behind the services' back (as the admin's
    # plain delete once did) leaves the channel without an owner.
    Membership.objects.filter(room=lobby, user=alice).delete()

    membership, _ = services.room_join(user=mallory, room=lobby)

    assert membership.role == "member"
    assert _roles(lobby) == {"bob": "member", "carol": "owner", "mallory": "member"}


def test_a_channel_whose_members_are_all_deactivated_is_adopted_by_the_next_joiner(alice, bob, mallory):
    room = services.room_create(creator=alice, name="Ghost town")
    services.room_join(user=bob, room=room)
    user_deactivate(user=bob)
    user_deactivate(user=alice)

    membership, _ = services.room_join(user=mallory, room=room)

    assert membership.role == "owner"


# --- Read state of a newcomer --------------------------------------------------------------------


def _read_state(user: Any, room: Room) -> tuple[int, int]:
    """Return the user's (unread_count, mention_count) of a room, as the room list shows them."""
    summary = next(summary for summary in room_list_for_member(user=user) if summary.pk == room.pk)
    return summary.unread_count, summary.mention_count  # type: ignore[attr-defined]


def _history_mentioning(room: Room, author: Any, username: str, count: int) -> int:
    """Post `count` messages that @mention `username`; return the newest message id."""
    newest = 0
    for n in range(count):
        message, _ = message_post(room=room, author=author, body=f"@{username} are you there? ({n})")
        newest = message.pk
    return newest


JOINS: dict[str, Callable[[Cast], object]] = {
    "room_join": lambda c: services.room_join(user=c.mallory, room=c.lobby),
    "member_add": lambda c: services.member_add(actor=c.carol, room=c.lobby, user_id=c.mallory.pk),
}


@pytest.mark.parametrize("join", list(JOINS))
def test_newcomer_has_nothing_unread_and_no_mentions_from_before_joining(cast, join):
    newest = _history_mentioning(cast.lobby, cast.alice, "mallory", 5)

    JOINS[join](cast)

    membership = Membership.objects.get(room=cast.lobby, user=cast.mallory)
    assert membership.last_read_message_id == newest
    assert _read_state(cast.mallory, cast.lobby) == (0, 0)


@pytest.mark.parametrize("join", list(JOINS))
def test_newcomer_counts_what_is_posted_after_joining(cast, join):
    _history_mentioning(cast.lobby, cast.alice, "mallory", 3)
    JOINS[join](cast)

    message_post(room=cast.lobby, author=cast.bob, body="welcome @mallory")
    message_post(room=cast.lobby, author=cast.bob, body="and hello to all")

    assert _read_state(cast.mallory, cast.lobby) == (2, 1)


def test_person_added_to_a_group_conversation_has_nothing_unread_from_before(alice, bob, carol, mallory):
    # A group conversation takes newcomers in place (a 1:1 would open a new group instead).
    room, _ = services.direct_open(creator=alice, user_ids=[bob.pk, mallory.pk])
    newest = _history_mentioning(room, alice, "carol", 4)

    services.member_add(actor=bob, room=room, user_id=carol.pk)

    assert Membership.objects.get(room=room, user=carol).last_read_message_id == newest
    assert _read_state(carol, room) == (0, 0)
    message_post(room=room, author=bob, body="@carol meet alice")
    assert _read_state(carol, room) == (1, 1)


# --- A new display name --------------------------------------------------------------------------


def test_new_display_name_records_one_user_updated_per_room_of_the_user_after_commit(
    alice, bob, lobby, secret, capture_events
):
    deleted = services.room_create(creator=alice, name="Gone")
    services.room_delete(actor=alice, room=deleted)

    with capture_events() as published:
        user_update_profile(user=alice, display_name="Alice Liddell")

    assert [event.type for event in published] == ["user.updated", "user.updated"]
    assert sorted(event.room_id for event in published) == sorted([lobby.pk, secret.pk])
    assert [event.id for event in published] == sorted(event.id for event in published)
    for event in published:
        assert event.user_id == alice.pk
        assert event.payload["user"] == {"id": alice.pk, "username": "alice", "display_name": "Alice Liddell"}
    # One change: every room's event names the same one.
    assert len({event.payload["change"] for event in published}) == 1


def test_unchanged_display_name_or_a_user_in_no_room_records_nothing(alice, mallory, lobby, capture_events):
    with capture_events() as published:
        user_update_profile(user=alice, display_name="  Alice ")
        user_update_profile(user=mallory, display_name="Mal")

    assert published == []
    mallory.refresh_from_db()
    assert mallory.display_name == "Mal"


def test_refused_display_name_records_nothing(alice, lobby, capture_events):
    with capture_events() as published, pytest.raises(Invalid):
        user_update_profile(user=alice, display_name="x" * 65)

    assert published == []
