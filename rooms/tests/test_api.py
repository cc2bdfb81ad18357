"""The rooms REST routes of docs/api.md: channels, DMs, memberships, bans and read markers.

The cast (see conftest): alice owns `lobby` (public) and `secret` (private),
carol is an admin of lobby, bob a member, mallory and staff are in no room.
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from messaging.services import message_delete, message_post, read_mark
from rooms import services
from rooms.models import Ban, Membership, Room
from rooms.payloads import RoomPayload

API = "/api/v1"
MISSING_ROOM_ID = 999_999
# The wire shape every room reply has (DMs add `members`): the payload type is the one list of fields.
ROOM_KEYS = RoomPayload.__required_keys__


def post(author, room_id: int, body: str = "hello"):  # type: ignore[no-untyped-def]
    message, _ = message_post(room=room_id, author=author, body=body)
    return message


def room_ids(response) -> list[int]:  # type: ignore[no-untyped-def]
    return [room["id"] for room in response.json()]


def mine(client: APIClient, room_id: int) -> dict:  # type: ignore[type-arg]
    """Return the caller's view of one room from rooms/ (unread_count, my_role…)."""
    [room] = [room for room in client.get(f"{API}/rooms/").json() if room["id"] == room_id]
    return room


# --- The cast in one room, for the route-by-caller matrix --------------------------------


@pytest.fixture
def ops(request, alice, bob, carol, make_user):  # type: ignore[no-untyped-def]
    """A channel of the given visibility: alice owner, carol admin, bob member; eve banned; one message."""
    room = services.room_create(creator=alice, name="Ops", visibility=request.param)
    services.member_add(actor=alice, room=room, user_id=bob.pk)
    services.member_add(actor=alice, room=room, user_id=carol.pk)
    services.member_set_role(actor=alice, room=room, user_id=carol.pk, role="admin")
    eve = make_user("eve")
    services.member_ban(actor=alice, room=room, user_id=eve.pk)
    trent = make_user("trent")
    message = post(alice, room.pk)
    return {"room": room.pk, "bob": bob.pk, "eve": eve.pk, "trent": trent.pk, "message": message.pk}


@pytest.fixture
def ops_public_ids(alice, bob, carol, make_user):  # type: ignore[no-untyped-def]
    """The `ops` ids for a public channel, for tests that are not parametrised over visibility."""
    room = services.room_create(creator=alice, name="Ops")
    services.member_add(actor=alice, room=room, user_id=bob.pk)
    eve = make_user("eve")
    services.member_ban(actor=alice, room=room, user_id=eve.pk)
    message = post(alice, room.pk)
    return {"room": room.pk, "bob": bob.pk, "eve": eve.pk, "trent": carol.pk, "message": message.pk}


# (method, path under rooms/{room}/, body); {names} are filled from the `ops` fixture.
ROOM_ROUTES = {
    "get": ("get", "", None),
    "patch": ("patch", "", {"topic": "New topic"}),
    "delete": ("delete", "", None),
    "join": ("post", "join/", None),
    "leave": ("post", "leave/", None),
    "members": ("get", "members/", None),
    "add": ("post", "members/", {"user": "{trent}"}),
    "set_role": ("patch", "members/{bob}/", {"role": "admin"}),
    "kick": ("delete", "members/{bob}/", None),
    "bans": ("get", "bans/", None),
    "ban": ("post", "bans/", {"user": "{trent}"}),
    "unban": ("delete", "bans/{eve}/", None),
    "read": ("post", "read/", {"message_id": "{message}"}),
    "history": ("get", "messages/", None),
    "send": ("post", "messages/", {"body": "hi"}),
}

# What each caller gets on each route of a channel; outsiders see a private one as missing.
EXPECTED = {
    #            alice carol bob  mallory staff
    "get": (200, 200, 200, 200, 200),
    "patch": (200, 200, 403, 403, 403),
    "delete": (204, 403, 403, 403, 403),
    "join": (200, 200, 200, 200, 200),
    "leave": (204, 204, 204, 403, 403),
    "members": (200, 200, 200, 403, 403),
    "add": (201, 201, 403, 403, 403),
    "set_role": (200, 403, 403, 403, 403),
    "kick": (204, 204, 403, 403, 403),
    "bans": (200, 200, 403, 403, 403),
    "ban": (201, 201, 403, 403, 403),
    "unban": (204, 204, 403, 403, 403),
    "read": (204, 204, 204, 403, 403),
    "history": (200, 200, 200, 403, 403),
    "send": (201, 201, 201, 403, 403),
}
CALLERS = ("alice", "carol", "bob", "mallory", "staff")


def call(client: APIClient, route: str, ids: dict[str, int], room_id: int | None = None):  # type: ignore[no-untyped-def]
    method, path, body = ROOM_ROUTES[route]
    path = path.format(**ids)
    if body is not None:
        body = {key: int(value.format(**ids)) if value.startswith("{") else value for key, value in body.items()}
    return getattr(client, method)(f"{API}/rooms/{room_id or ids['room']}/{path}", body, format="json")


def matrix_cases(visibility: str) -> list:  # type: ignore[type-arg]
    cases = []
    for route, statuses in EXPECTED.items():
        for caller, status in zip(CALLERS, statuses, strict=True):
            if visibility == "private" and caller in ("mallory", "staff"):
                status = 404
            cases.append(pytest.param(visibility, route, caller, status, id=f"{visibility}-{route}-{caller}"))
    return cases


@pytest.mark.parametrize(
    ("ops", "route", "caller", "status"),
    matrix_cases("public") + matrix_cases("private"),
    indirect=["ops"],
)
def test_each_room_route_answers_each_caller_as_the_contract_says(
    request, ops, client_for, staff, mallory, route, caller, status
):
    response = call(client_for(request.getfixturevalue(caller)), route, ops)

    assert response.status_code == status, response.content


@pytest.mark.parametrize("ops", ["public", "private"], indirect=True)
@pytest.mark.parametrize("route", list(ROOM_ROUTES))
def test_each_room_route_without_credentials_is_401(ops, anon, route):
    response = call(anon, route, ops)

    assert response.status_code == 401


@pytest.mark.parametrize("ops", ["private"], indirect=True)
@pytest.mark.parametrize("caller", ["mallory", "staff"])
@pytest.mark.parametrize("route", list(ROOM_ROUTES))
def test_outsider_gets_the_same_404_for_a_private_room_as_for_a_missing_one(
    request, ops, client_for, mallory, staff, caller, route
):
    client = client_for(request.getfixturevalue(caller))

    private = call(client, route, ops)
    missing = call(client, route, ops, room_id=MISSING_ROOM_ID)

    assert private.status_code == missing.status_code == 404
    assert private.json() == missing.json()


@pytest.mark.parametrize("route", list(ROOM_ROUTES))
def test_outsider_gets_the_same_404_for_a_dm_as_for_a_missing_room(client_for, alice, bob, mallory, route):
    dm, _ = services.direct_open(creator=alice, user_ids=[bob.pk])
    ids = {"room": dm.pk, "bob": bob.pk, "eve": alice.pk, "trent": mallory.pk, "message": post(alice, dm.pk).pk}
    client = client_for(mallory)

    private = call(client, route, ids)
    missing = call(client, route, ids, room_id=MISSING_ROOM_ID)

    assert private.status_code == missing.status_code == 404
    assert private.json() == missing.json()


@pytest.mark.parametrize("route", list(ROOM_ROUTES))
def test_deleted_room_answers_like_a_missing_one(client_for, alice, bob, mallory, route):
    room = services.room_create(creator=alice, name="Doomed")
    ids = {"room": room.pk, "bob": bob.pk, "eve": bob.pk, "trent": mallory.pk, "message": post(alice, room.pk).pk}
    services.room_delete(actor=alice, room=room)
    client = client_for(alice)

    deleted = call(client, route, ids)
    missing = call(client, route, ids, room_id=MISSING_ROOM_ID)

    assert deleted.status_code == missing.status_code == 404
    assert deleted.json() == missing.json()


# What each DM member and outsider gets on each route of a DM between alice and bob.
DM_EXPECTED = {
    #            alice bob  mallory
    "get": (200, 200, 404),
    "patch": (403, 403, 404),
    "delete": (403, 403, 404),
    "join": (200, 200, 404),
    "leave": (204, 204, 404),
    "members": (200, 200, 404),
    "add": (201, 201, 404),
    "set_role": (403, 403, 404),
    "kick": (403, 403, 404),
    "bans": (403, 403, 404),
    "ban": (403, 403, 404),
    "unban": (403, 403, 404),
    "read": (204, 204, 404),
    "history": (200, 200, 404),
    "send": (201, 201, 404),
}


@pytest.mark.parametrize(
    ("route", "caller", "status"),
    [
        pytest.param(route, caller, status, id=f"{route}-{caller}")
        for route, statuses in DM_EXPECTED.items()
        for caller, status in zip(("alice", "bob", "mallory"), statuses, strict=True)
    ],
)
def test_each_dm_route_answers_each_caller_as_the_contract_says(
    request, client_for, alice, bob, mallory, make_user, route, caller, status
):
    dm, _ = services.direct_open(creator=alice, user_ids=[bob.pk])
    trent = make_user("trent")
    ids = {"room": dm.pk, "bob": bob.pk, "eve": trent.pk, "trent": trent.pk, "message": post(alice, dm.pk).pk}

    response = call(client_for(request.getfixturevalue(caller)), route, ids)

    assert response.status_code == status, response.content


def test_routes_outside_a_room_without_credentials_are_401(anon, alice, bob):
    assert anon.get(f"{API}/rooms/").status_code == 401
    assert anon.post(f"{API}/rooms/", {"name": "x"}, format="json").status_code == 401
    assert anon.get(f"{API}/rooms/public/").status_code == 401
    assert anon.post(f"{API}/dms/", {"users": [bob.pk]}, format="json").status_code == 401
    assert not Room.objects.exists()


@pytest.mark.parametrize("route", list(ROOM_ROUTES))
@pytest.mark.parametrize("huge", [2**63, 10**30])
def test_ids_beyond_64_bits_are_a_json_404(ops_public_ids, client_for, alice, route, huge):
    ids = {**ops_public_ids, "bob": huge, "eve": huge}

    in_room = call(client_for(alice), route, ids) if "{" in ROOM_ROUTES[route][1] else None
    huge_room = call(client_for(alice), route, ids, room_id=huge)

    assert huge_room.status_code == 404
    assert "detail" in huge_room.json()
    if in_room is not None:
        assert in_room.status_code == 404
        assert "detail" in in_room.json()


ODD_BODIES = [
    None,
    [],
    "x",
    5,
    {"user": None},
    {"user": True},
    {"user": 1.5},
    {"user": -1},
    {"user": 2**63},
    {"user": 2**63 - 1},
    {"user": 2**63 - 1, "reason": None},
    {"users": None},
    {"users": [2**63 - 1]},
    {"users": [2**63]},
    {"users": list(range(1, 40))},
    {"message_id": 2**63 - 1},
    {"message_id": 2**63},
    {"role": None},
    {"role": ["admin"]},
    {"name": None},
    {"name": "a\x00b"},
    {"name": "x" * 10_000},
    {"name": "🎉"},
    {"topic": None},
    {"visibility": ["public"]},
]


@pytest.mark.parametrize("route", [route for route, (method, _, _) in ROOM_ROUTES.items() if method != "get"])
def test_odd_input_to_a_room_route_is_a_client_error_never_a_server_error(ops_public_ids, client_for, alice, route):
    client = client_for(alice)
    method, path, _ = ROOM_ROUTES[route]
    url = f"{API}/rooms/{ops_public_ids['room']}/{path.format(**ops_public_ids)}"

    statuses = {repr(body): getattr(client, method)(url, body, format="json").status_code for body in ODD_BODIES}

    assert all(status < 500 for status in statuses.values()), statuses


@pytest.mark.parametrize("path", ["rooms/", "dms/"])
def test_odd_input_to_create_routes_is_a_client_error_never_a_server_error(client_for, alice, path):
    client = client_for(alice)

    statuses = {repr(body): client.post(f"{API}/{path}", body, format="json").status_code for body in ODD_BODIES}

    assert all(status < 500 for status in statuses.values()), statuses


@pytest.mark.parametrize("path", ["rooms/public/", "rooms/{room}/members/", "rooms/{room}/bans/"])
@pytest.mark.parametrize("after", [2**63, 10**30, -1, "1e3"])
def test_members_and_public_rooms_refuse_an_after_out_of_range(ops_public_ids, client_for, alice, path, after):
    response = client_for(alice).get(f"{API}/{path.format(**ops_public_ids)}", {"after": after})

    assert response.status_code == 400
    assert "after" in response.json()


# --- Reading one room ---------------------------------------------------------------------


def test_room_detail_shows_the_room_and_the_callers_role(client_for, lobby, alice, bob, carol, mallory):
    for user, role in ((alice, "owner"), (carol, "admin"), (bob, "member"), (mallory, None)):
        body = client_for(user).get(f"{API}/rooms/{lobby.pk}/").json()

        assert set(body) == ROOM_KEYS
        assert body["my_role"] == role
        assert body["member_count"] == 3
        assert (body["kind"], body["name"], body["slug"], body["topic"]) == ("channel", "Lobby", "lobby", "Say hi")


def test_staff_has_no_special_rights_in_rooms(client_for, lobby, secret, staff, bob):
    client = client_for(staff)

    assert client.get(f"{API}/rooms/{secret.pk}/").status_code == 404
    assert client.get(f"{API}/rooms/{lobby.pk}/members/").status_code == 403
    assert client.patch(f"{API}/rooms/{lobby.pk}/", {"topic": "mine"}, format="json").status_code == 403
    assert client.delete(f"{API}/rooms/{lobby.pk}/members/{bob.pk}/").status_code == 403
    assert client.delete(f"{API}/rooms/{lobby.pk}/").status_code == 403
    assert Membership.objects.filter(room=lobby, user=bob).exists()


# --- rooms/ -------------------------------------------------------------------------------------


def test_rooms_lists_only_the_callers_rooms(client_for, lobby, secret, alice, bob, mallory):
    dm, _ = services.direct_open(creator=bob, user_ids=[mallory.pk])

    assert sorted(room_ids(client_for(alice).get(f"{API}/rooms/"))) == sorted([lobby.pk, secret.pk])
    assert sorted(room_ids(client_for(bob).get(f"{API}/rooms/"))) == sorted([lobby.pk, dm.pk])
    assert room_ids(client_for(mallory).get(f"{API}/rooms/")) == [dm.pk]


def test_rooms_shows_member_count_and_last_message_id(client_for, lobby, secret, alice, bob):
    post(bob, lobby.pk)
    last = post(alice, lobby.pk)

    rooms = {room["id"]: room for room in client_for(alice).get(f"{API}/rooms/").json()}

    assert rooms[lobby.pk]["member_count"] == 3
    assert rooms[lobby.pk]["last_message_id"] == last.pk
    assert rooms[secret.pk]["member_count"] == 1
    assert rooms[secret.pk]["last_message_id"] is None
    assert rooms[lobby.pk]["my_role"] == "owner"


def test_rooms_lists_the_most_recently_active_room_first(client_for, lobby, secret, alice):
    post(alice, secret.pk)

    assert room_ids(client_for(alice).get(f"{API}/rooms/")) == [secret.pk, lobby.pk]


def test_rooms_lists_dms_with_their_members(client_for, alice, bob):
    dm, _ = services.direct_open(creator=alice, user_ids=[bob.pk])

    [room] = client_for(bob).get(f"{API}/rooms/").json()

    assert room["id"] == dm.pk
    assert room["kind"] == "direct"
    assert room["visibility"] == "private"
    assert [member["username"] for member in room["members"]] == ["alice", "bob"]


def test_rooms_leaves_out_rooms_the_caller_left(client_for, lobby, bob):
    services.room_leave(user=bob, room=lobby)

    assert client_for(bob).get(f"{API}/rooms/").json() == []


# --- rooms/public/ ------------------------------------------------------------------------------


def test_public_rooms_lists_public_channels_members_or_not(client_for, lobby, secret, alice, bob, mallory):
    services.direct_open(creator=alice, user_ids=[bob.pk])
    other = services.room_create(creator=bob, name="Random")

    body = client_for(mallory).get(f"{API}/rooms/public/").json()

    assert [room["id"] for room in body["results"]] == [lobby.pk, other.pk]
    assert [room["my_role"] for room in body["results"]] == [None, None]
    assert body["has_more"] is False


def test_public_rooms_says_which_channels_the_caller_is_banned_from(client_for, lobby, alice, bob):
    other = services.room_create(creator=alice, name="Random")
    services.member_ban(actor=alice, room=lobby, user_id=bob.pk, reason="spam")

    def banned(user) -> dict[int, bool]:  # type: ignore[no-untyped-def]
        return {room["id"]: room["banned"] for room in client_for(user).get(f"{API}/rooms/public/").json()["results"]}

    assert banned(bob) == {lobby.pk: True, other.pk: False}
    assert banned(alice) == {lobby.pk: False, other.pk: False}


def test_public_rooms_shows_the_callers_role(client_for, lobby, bob):
    [room] = client_for(bob).get(f"{API}/rooms/public/").json()["results"]

    assert room["my_role"] == "member"
    assert room["member_count"] == 3


def test_public_rooms_filters_by_name_or_topic(client_for, lobby, alice, bob):
    services.room_create(creator=alice, name="Random", topic="cats and hats")
    services.room_create(creator=alice, name="Hats")

    body = client_for(bob).get(f"{API}/rooms/public/", {"q": "hat"}).json()

    assert [room["name"] for room in body["results"]] == ["Random", "Hats"]


def test_public_rooms_pages_with_after_and_limit(client_for, alice, bob):
    rooms = [services.room_create(creator=alice, name=f"Room {n}") for n in range(5)]
    client = client_for(bob)

    first = client.get(f"{API}/rooms/public/", {"limit": 3}).json()
    rest = client.get(f"{API}/rooms/public/", {"limit": 3, "after": first["results"][-1]["id"]}).json()

    assert [room["id"] for room in first["results"]] == [room.pk for room in rooms[:3]]
    assert first["has_more"] is True
    assert [room["id"] for room in rest["results"]] == [room.pk for room in rooms[3:]]
    assert rest["has_more"] is False


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 201}, {"limit": "x"}, {"after": "x"}, {"q": "x" * 201}])
def test_public_rooms_rejects_bad_parameters(client_for, bob, params):
    response = client_for(bob).get(f"{API}/rooms/public/", params)

    assert response.status_code == 400
    assert set(params) <= set(response.json())


# --- Creating, changing and deleting channels ------------------------------------------------


def test_create_room_makes_the_caller_owner(client_for, alice):
    response = client_for(alice).post(f"{API}/rooms/", {"name": "Dev Talk", "topic": "Code"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == ROOM_KEYS
    assert body["kind"] == "channel"
    assert (body["name"], body["slug"], body["topic"], body["visibility"]) == ("Dev Talk", "dev-talk", "Code", "public")
    assert (body["my_role"], body["member_count"], body["unread_count"], body["last_message_id"]) == (
        "owner",
        1,
        0,
        None,
    )
    assert Membership.objects.get(room_id=body["id"], user=alice).role == "owner"


def test_create_private_room_is_hidden_from_others(client_for, alice, mallory):
    body = client_for(alice).post(f"{API}/rooms/", {"name": "Hush", "visibility": "private"}, format="json").json()

    assert body["visibility"] == "private"
    assert client_for(mallory).get(f"{API}/rooms/{body['id']}/").status_code == 404
    assert client_for(mallory).get(f"{API}/rooms/public/").json()["results"] == []


@pytest.mark.parametrize(
    ("body", "bad_field"),
    [
        pytest.param({"name": ""}, "name", id="empty-name"),
        pytest.param({"name": "   "}, "name", id="blank-name"),
        pytest.param({"name": "!!!"}, "name", id="name-without-letters"),
        pytest.param({"name": "x" * 81}, "name", id="name-too-long"),
        pytest.param({"name": "lobby"}, "name", id="duplicate-name-other-case"),
        pytest.param({"name": "Lobby"}, "name", id="duplicate-name"),
        pytest.param({}, "name", id="missing-name"),
        pytest.param({"name": ["Dev"]}, "name", id="name-wrong-type"),
        pytest.param({"name": "Dev", "topic": "x" * 251}, "topic", id="topic-too-long"),
        pytest.param({"name": "Dev", "visibility": "secret"}, "visibility", id="bad-visibility"),
        pytest.param({"name": "Dev", "visibility": None}, "visibility", id="null-visibility"),
        pytest.param({"name": "Dev", "kind": "direct"}, "kind", id="unknown-field"),
    ],
)
def test_create_room_rejects_bad_input_and_creates_nothing(client_for, lobby, bob, body, bad_field):
    rooms_before = Room.objects.count()

    response = client_for(bob).post(f"{API}/rooms/", body, format="json")

    assert response.status_code == 400
    assert bad_field in response.json()
    assert Room.objects.count() == rooms_before


def test_create_room_may_reuse_the_name_of_a_deleted_room(client_for, lobby, alice):
    services.room_delete(actor=alice, room=lobby)

    response = client_for(alice).post(f"{API}/rooms/", {"name": "Lobby"}, format="json")

    assert response.status_code == 201


def test_admin_can_rename_and_set_the_topic(client_for, lobby, carol):
    response = client_for(carol).patch(f"{API}/rooms/{lobby.pk}/", {"name": "Main Hall", "topic": "All"}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["slug"], body["topic"], body["my_role"]) == ("Main Hall", "main-hall", "All", "admin")


def test_patch_topic_alone_keeps_the_name(client_for, lobby, alice):
    body = client_for(alice).patch(f"{API}/rooms/{lobby.pk}/", {"topic": ""}, format="json").json()

    assert (body["name"], body["topic"]) == ("Lobby", "")


def test_rename_to_its_own_name_in_another_case_is_allowed(client_for, lobby, alice):
    response = client_for(alice).patch(f"{API}/rooms/{lobby.pk}/", {"name": "LOBBY"}, format="json")

    assert response.status_code == 200
    assert response.json()["name"] == "LOBBY"


@pytest.mark.parametrize(
    ("body", "bad_field"),
    [
        pytest.param({"name": "Other"}, "name", id="name-of-another-channel"),
        pytest.param({"name": ""}, "name", id="empty-name"),
        pytest.param({"topic": "x" * 251}, "topic", id="topic-too-long"),
        pytest.param({"visibility": "private"}, "visibility", id="visibility-not-editable"),
        pytest.param({"topic": 5, "colour": "red"}, "colour", id="unknown-field"),
    ],
)
def test_patch_room_rejects_bad_input_and_changes_nothing(client_for, lobby, alice, body, bad_field):
    services.room_create(creator=alice, name="Other")

    response = client_for(alice).patch(f"{API}/rooms/{lobby.pk}/", body, format="json")

    assert response.status_code == 400
    assert bad_field in response.json()
    lobby.refresh_from_db()
    assert (lobby.name, lobby.topic, lobby.visibility) == ("Lobby", "Say hi", "public")


def test_deleted_room_is_gone_from_lists_and_404_afterwards(client_for, lobby, secret, alice, bob):
    response = client_for(alice).delete(f"{API}/rooms/{lobby.pk}/")

    assert response.status_code == 204
    assert room_ids(client_for(alice).get(f"{API}/rooms/")) == [secret.pk]
    assert client_for(bob).get(f"{API}/rooms/").json() == []
    assert client_for(bob).get(f"{API}/rooms/public/").json()["results"] == []
    assert client_for(alice).get(f"{API}/rooms/{lobby.pk}/").status_code == 404
    assert client_for(alice).delete(f"{API}/rooms/{lobby.pk}/").status_code == 404


# --- Joining and leaving ------------------------------------------------------------------------


def test_join_public_channel_returns_the_room_as_member(client_for, lobby, mallory):
    response = client_for(mallory).post(f"{API}/rooms/{lobby.pk}/join/")

    assert response.status_code == 200
    assert response.json()["my_role"] == "member"
    assert response.json()["member_count"] == 4
    assert Membership.objects.get(room=lobby, user=mallory).role == "member"


def test_joining_twice_keeps_one_membership_and_the_role(client_for, lobby, carol):
    response = client_for(carol).post(f"{API}/rooms/{lobby.pk}/join/")

    assert response.status_code == 200
    assert response.json()["my_role"] == "admin"
    assert Membership.objects.filter(room=lobby, user=carol).count() == 1


def test_join_private_channel_is_404_like_a_missing_room(client_for, secret, mallory):
    response = client_for(mallory).post(f"{API}/rooms/{secret.pk}/join/")
    missing = client_for(mallory).post(f"{API}/rooms/{MISSING_ROOM_ID}/join/")

    assert response.status_code == 404
    assert response.json() == missing.json()
    assert not Membership.objects.filter(room=secret, user=mallory).exists()


def test_leave_removes_the_membership(client_for, lobby, bob):
    response = client_for(bob).post(f"{API}/rooms/{lobby.pk}/leave/")

    assert response.status_code == 204
    assert not Membership.objects.filter(room=lobby, user=bob).exists()
    assert client_for(bob).get(f"{API}/rooms/{lobby.pk}/").json()["my_role"] is None


def test_leaving_a_private_room_makes_it_404(client_for, secret, alice, bob):
    services.member_add(actor=alice, room=secret, user_id=bob.pk)

    assert client_for(bob).post(f"{API}/rooms/{secret.pk}/leave/").status_code == 204
    assert client_for(bob).get(f"{API}/rooms/{secret.pk}/").status_code == 404
    assert client_for(bob).post(f"{API}/rooms/{secret.pk}/join/").status_code == 404


def test_owner_leaving_hands_ownership_to_the_senior_admin(client_for, lobby, alice, carol):
    response = client_for(alice).post(f"{API}/rooms/{lobby.pk}/leave/")

    assert response.status_code == 204
    assert Membership.objects.get(room=lobby, user=carol).role == "owner"


def test_owner_leaving_a_room_without_admins_hands_ownership_to_the_oldest_member(client_for, alice, bob, carol):
    room = services.room_create(creator=alice, name="Dev")
    services.room_join(user=bob, room=room)
    services.room_join(user=carol, room=room)

    client_for(alice).post(f"{API}/rooms/{room.pk}/leave/")

    assert Membership.objects.get(room=room, user=bob).role == "owner"
    assert Membership.objects.get(room=room, user=carol).role == "member"


def test_one_of_two_owners_leaving_keeps_the_other_alone_as_owner(client_for, lobby, alice, bob, carol):
    services.member_set_role(actor=alice, room=lobby, user_id=bob.pk, role="owner")

    client_for(alice).post(f"{API}/rooms/{lobby.pk}/leave/")

    assert dict(Membership.objects.filter(room=lobby).values_list("user__username", "role")) == {
        "bob": "owner",
        "carol": "admin",
    }


# --- Members ------------------------------------------------------------------------------------


def test_members_lists_user_role_and_joined_at(client_for, lobby, alice, bob, carol):
    response = client_for(bob).get(f"{API}/rooms/{lobby.pk}/members/")

    assert response.status_code == 200
    body = response.json()
    assert body["has_more"] is False
    assert [(member["user"]["username"], member["role"]) for member in body["results"]] == [
        ("alice", "owner"),
        ("bob", "member"),
        ("carol", "admin"),
    ]
    assert body["results"][0]["user"] == {"id": alice.pk, "username": "alice", "display_name": "Alice"}
    assert body["results"][0]["joined_at"].endswith("Z")


def test_members_pages_with_after_and_limit(client_for, lobby, alice, bob, carol):
    client = client_for(bob)

    first = client.get(f"{API}/rooms/{lobby.pk}/members/", {"limit": 2}).json()
    rest = client.get(f"{API}/rooms/{lobby.pk}/members/", {"limit": 2, "after": bob.pk}).json()

    assert [member["user"]["id"] for member in first["results"]] == [alice.pk, bob.pk]
    assert first["has_more"] is True
    assert [member["user"]["id"] for member in rest["results"]] == [carol.pk]
    assert rest["has_more"] is False


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 201}, {"limit": "x"}, {"after": "x"}])
def test_members_rejects_bad_parameters(client_for, lobby, bob, params):
    response = client_for(bob).get(f"{API}/rooms/{lobby.pk}/members/", params)

    assert response.status_code == 400


def test_public_channel_outsider_cannot_list_members_or_post(client_for, lobby, mallory):
    client = client_for(mallory)

    assert client.get(f"{API}/rooms/{lobby.pk}/members/").status_code == 403
    assert client.post(f"{API}/rooms/{lobby.pk}/messages/", {"body": "hi"}, format="json").status_code == 403
    assert client.get(f"{API}/rooms/{lobby.pk}/messages/").status_code == 403


def test_admin_adds_a_user_as_member(client_for, lobby, carol, mallory):
    response = client_for(carol).post(f"{API}/rooms/{lobby.pk}/members/", {"user": mallory.pk}, format="json")

    assert response.status_code == 201
    assert response.json()["user"]["id"] == mallory.pk
    assert response.json()["role"] == "member"
    assert Membership.objects.get(room=lobby, user=mallory).role == "member"


def test_adding_an_existing_member_is_200_and_keeps_their_role(client_for, lobby, alice, carol):
    response = client_for(alice).post(f"{API}/rooms/{lobby.pk}/members/", {"user": carol.pk}, format="json")

    assert response.status_code == 200
    assert response.json()["role"] == "admin"


def test_owner_adds_to_a_private_room_which_the_new_member_then_sees(client_for, secret, alice, bob):
    client_for(alice).post(f"{API}/rooms/{secret.pk}/members/", {"user": bob.pk}, format="json")

    response = client_for(bob).get(f"{API}/rooms/{secret.pk}/")

    assert response.status_code == 200
    assert response.json()["my_role"] == "member"


@pytest.mark.parametrize(
    "body",
    [{"user": 999_999}, {"user": "x"}, {"user": 0}, {}, {"user": 1, "role": "admin"}],
    ids=["unknown-user", "wrong-type", "zero", "missing", "unknown-field"],
)
def test_add_member_rejects_bad_input(client_for, lobby, alice, body):
    members_before = Membership.objects.filter(room=lobby).count()

    response = client_for(alice).post(f"{API}/rooms/{lobby.pk}/members/", body, format="json")

    assert response.status_code == 400
    assert Membership.objects.filter(room=lobby).count() == members_before


def test_add_an_inactive_user_is_400(client_for, lobby, alice, make_user):
    gone = make_user("gone", is_active=False)

    response = client_for(alice).post(f"{API}/rooms/{lobby.pk}/members/", {"user": gone.pk}, format="json")

    assert response.status_code == 400


def test_owner_changes_roles(client_for, lobby, alice, bob, carol):
    client = client_for(alice)

    promoted = client.patch(f"{API}/rooms/{lobby.pk}/members/{bob.pk}/", {"role": "admin"}, format="json")
    demoted = client.patch(f"{API}/rooms/{lobby.pk}/members/{carol.pk}/", {"role": "member"}, format="json")

    assert promoted.status_code == 200
    assert promoted.json()["role"] == "admin"
    assert promoted.json()["user"]["id"] == bob.pk
    assert demoted.status_code == 200
    assert Membership.objects.get(room=lobby, user=carol).role == "member"


def test_admin_cannot_change_roles(client_for, lobby, bob, carol):
    response = client_for(carol).patch(f"{API}/rooms/{lobby.pk}/members/{bob.pk}/", {"role": "admin"}, format="json")

    assert response.status_code == 403
    assert Membership.objects.get(room=lobby, user=bob).role == "member"


def test_admin_cannot_promote_themselves(client_for, lobby, carol):
    response = client_for(carol).patch(f"{API}/rooms/{lobby.pk}/members/{carol.pk}/", {"role": "owner"}, format="json")

    assert response.status_code == 403
    assert Membership.objects.get(room=lobby, user=carol).role == "admin"


def test_last_owner_cannot_demote_themselves(client_for, lobby, alice):
    response = client_for(alice).patch(f"{API}/rooms/{lobby.pk}/members/{alice.pk}/", {"role": "member"}, format="json")

    assert response.status_code == 400
    assert "role" in response.json()
    assert Membership.objects.get(room=lobby, user=alice).role == "owner"


def test_owner_may_step_down_once_another_owner_exists(client_for, lobby, alice, carol):
    client = client_for(alice)
    client.patch(f"{API}/rooms/{lobby.pk}/members/{carol.pk}/", {"role": "owner"}, format="json")

    response = client.patch(f"{API}/rooms/{lobby.pk}/members/{alice.pk}/", {"role": "admin"}, format="json")

    assert response.status_code == 200
    assert Membership.objects.get(room=lobby, user=alice).role == "admin"


@pytest.mark.parametrize(
    "body", [{"role": "king"}, {}, {"role": "admin", "user": 1}], ids=["bad-role", "missing", "unknown-field"]
)
def test_set_role_rejects_bad_input(client_for, lobby, alice, bob, body):
    response = client_for(alice).patch(f"{API}/rooms/{lobby.pk}/members/{bob.pk}/", body, format="json")

    assert response.status_code == 400
    assert Membership.objects.get(room=lobby, user=bob).role == "member"


def test_set_role_of_a_non_member_is_404(client_for, lobby, alice, mallory):
    response = client_for(alice).patch(
        f"{API}/rooms/{lobby.pk}/members/{mallory.pk}/", {"role": "admin"}, format="json"
    )

    assert response.status_code == 404


# --- Kicks and bans -----------------------------------------------------------------------------


def test_admin_kicks_a_member_who_may_then_rejoin(client_for, lobby, bob, carol):
    kicked = client_for(carol).delete(f"{API}/rooms/{lobby.pk}/members/{bob.pk}/")
    rejoined = client_for(bob).post(f"{API}/rooms/{lobby.pk}/join/")

    assert kicked.status_code == 204
    assert rejoined.status_code == 200
    assert rejoined.json()["my_role"] == "member"


def test_kicked_member_of_a_private_room_sees_it_as_missing(client_for, secret, alice, bob):
    services.member_add(actor=alice, room=secret, user_id=bob.pk)

    client_for(alice).delete(f"{API}/rooms/{secret.pk}/members/{bob.pk}/")

    assert client_for(bob).get(f"{API}/rooms/{secret.pk}/").status_code == 404


@pytest.mark.parametrize("action", ["kick", "ban"])
def test_admin_cannot_remove_the_owner(client_for, lobby, alice, carol, action):
    client = client_for(carol)
    if action == "kick":
        response = client.delete(f"{API}/rooms/{lobby.pk}/members/{alice.pk}/")
    else:
        response = client.post(f"{API}/rooms/{lobby.pk}/bans/", {"user": alice.pk}, format="json")

    assert response.status_code == 403
    assert Membership.objects.get(room=lobby, user=alice).role == "owner"
    assert not Ban.objects.exists()


@pytest.mark.parametrize("action", ["kick", "ban"])
def test_admin_cannot_remove_another_admin(client_for, lobby, alice, bob, carol, action):
    services.member_set_role(actor=alice, room=lobby, user_id=bob.pk, role="admin")
    client = client_for(carol)
    if action == "kick":
        response = client.delete(f"{API}/rooms/{lobby.pk}/members/{bob.pk}/")
    else:
        response = client.post(f"{API}/rooms/{lobby.pk}/bans/", {"user": bob.pk}, format="json")

    assert response.status_code == 403
    assert Membership.objects.filter(room=lobby, user=bob).exists()
    assert not Ban.objects.exists()


@pytest.mark.parametrize("action", ["kick", "ban"])
def test_owner_can_remove_an_admin(client_for, lobby, alice, carol, action):
    client = client_for(alice)
    if action == "kick":
        response = client.delete(f"{API}/rooms/{lobby.pk}/members/{carol.pk}/")
    else:
        response = client.post(f"{API}/rooms/{lobby.pk}/bans/", {"user": carol.pk}, format="json")

    assert response.status_code in (201, 204)
    assert not Membership.objects.filter(room=lobby, user=carol).exists()


def test_moderator_cannot_kick_themselves(client_for, lobby, carol):
    response = client_for(carol).delete(f"{API}/rooms/{lobby.pk}/members/{carol.pk}/")

    assert response.status_code == 400
    assert Membership.objects.filter(room=lobby, user=carol).exists()


def test_kicking_a_non_member_is_404(client_for, lobby, alice, mallory):
    response = client_for(alice).delete(f"{API}/rooms/{lobby.pk}/members/{mallory.pk}/")

    assert response.status_code == 404


def test_ban_removes_the_member_and_answers_with_the_ban(client_for, lobby, bob, carol):
    response = client_for(carol).post(
        f"{API}/rooms/{lobby.pk}/bans/", {"user": bob.pk, "reason": "spam"}, format="json"
    )

    assert response.status_code == 201
    body = response.json()
    assert (body["room"], body["user"]["id"], body["reason"]) == (lobby.pk, bob.pk, "spam")
    assert not Membership.objects.filter(room=lobby, user=bob).exists()


def test_banned_user_cannot_rejoin_or_be_added_until_unbanned(client_for, lobby, alice, bob):
    owner = client_for(alice)
    owner.post(f"{API}/rooms/{lobby.pk}/bans/", {"user": bob.pk}, format="json")

    rejoin = client_for(bob).post(f"{API}/rooms/{lobby.pk}/join/")
    add = owner.post(f"{API}/rooms/{lobby.pk}/members/", {"user": bob.pk}, format="json")
    unban = owner.delete(f"{API}/rooms/{lobby.pk}/bans/{bob.pk}/")
    rejoin_after = client_for(bob).post(f"{API}/rooms/{lobby.pk}/join/")

    assert rejoin.status_code == 403
    assert add.status_code == 400
    assert "user" in add.json()
    assert unban.status_code == 204
    assert rejoin_after.status_code == 200


def test_unbanned_user_can_be_added_again(client_for, lobby, alice, bob):
    services.member_ban(actor=alice, room=lobby, user_id=bob.pk)
    services.member_unban(actor=alice, room=lobby, user_id=bob.pk)

    response = client_for(alice).post(f"{API}/rooms/{lobby.pk}/members/", {"user": bob.pk}, format="json")

    assert response.status_code == 201


def test_banning_a_non_member_keeps_them_out(client_for, lobby, carol, mallory):
    response = client_for(carol).post(f"{API}/rooms/{lobby.pk}/bans/", {"user": mallory.pk}, format="json")

    assert response.status_code == 201
    assert client_for(mallory).post(f"{API}/rooms/{lobby.pk}/join/").status_code == 403


def test_banned_user_still_sees_the_public_channel_but_not_its_members(client_for, lobby, alice, bob):
    services.member_ban(actor=alice, room=lobby, user_id=bob.pk)
    client = client_for(bob)

    assert client.get(f"{API}/rooms/{lobby.pk}/").json()["my_role"] is None
    assert client.get(f"{API}/rooms/{lobby.pk}/members/").status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        {"user": 999_999},
        {"user": "x"},
        {},
        {"user": 1, "reason": "x" * 501},
        {"user": 1, "until": "tomorrow"},
    ],
    ids=["unknown-user", "wrong-type", "missing", "reason-too-long", "unknown-field"],
)
def test_ban_rejects_bad_input(client_for, lobby, alice, bob, body):
    response = client_for(alice).post(f"{API}/rooms/{lobby.pk}/bans/", body, format="json")

    assert response.status_code == 400
    assert not Ban.objects.exists()


def test_moderator_cannot_ban_themselves(client_for, lobby, carol):
    response = client_for(carol).post(f"{API}/rooms/{lobby.pk}/bans/", {"user": carol.pk}, format="json")

    assert response.status_code == 400
    assert not Ban.objects.exists()


def test_owners_and_admins_list_a_channels_bans_with_who_banned_and_why(client_for, lobby, alice, bob, carol, mallory):
    services.member_ban(actor=carol, room=lobby, user_id=bob.pk, reason="spam")
    services.member_ban(actor=alice, room=lobby, user_id=mallory.pk)

    for moderator in (alice, carol):
        body = client_for(moderator).get(f"{API}/rooms/{lobby.pk}/bans/").json()

        assert body["has_more"] is False
        assert [(ban["user"]["id"], ban["reason"], ban["banned_by"]["id"]) for ban in body["results"]] == [
            (bob.pk, "spam", carol.pk),
            (mallory.pk, "", alice.pk),
        ]
        assert set(body["results"][0]) == {"room", "user", "reason", "banned_by", "created_at"}
        assert body["results"][0]["user"] == {"id": bob.pk, "username": "bob", "display_name": "Bob"}


def test_the_ban_list_pages_by_user_id(client_for, lobby, alice, make_user):
    banned = [make_user(f"spammer{n}") for n in range(3)]
    for user in banned:
        services.member_ban(actor=alice, room=lobby, user_id=user.pk)
    client = client_for(alice)

    first = client.get(f"{API}/rooms/{lobby.pk}/bans/", {"limit": 2}).json()
    rest = client.get(f"{API}/rooms/{lobby.pk}/bans/", {"limit": 2, "after": first["results"][-1]["user"]["id"]}).json()

    assert [ban["user"]["id"] for ban in first["results"] + rest["results"]] == [user.pk for user in banned]
    assert (first["has_more"], rest["has_more"]) == (True, False)


def test_a_ban_outlives_the_account_of_who_banned(client_for, lobby, alice, bob, carol):
    services.member_ban(actor=carol, room=lobby, user_id=bob.pk)
    carol.delete()

    [ban] = client_for(alice).get(f"{API}/rooms/{lobby.pk}/bans/").json()["results"]

    assert (ban["user"]["id"], ban["banned_by"]) == (bob.pk, None)


def test_lifting_a_ban_that_does_not_exist_is_404(client_for, lobby, alice, bob):
    response = client_for(alice).delete(f"{API}/rooms/{lobby.pk}/bans/{bob.pk}/")

    assert response.status_code == 404


# --- Direct conversations -----------------------------------------------------------------------


def test_dm_is_created_once_then_found_from_either_side(client_for, alice, bob):
    created = client_for(alice).post(f"{API}/dms/", {"users": [bob.pk]}, format="json")
    again = client_for(alice).post(f"{API}/dms/", {"users": [bob.pk]}, format="json")
    other_side = client_for(bob).post(f"{API}/dms/", {"users": [alice.pk]}, format="json")

    assert created.status_code == 201
    assert again.status_code == other_side.status_code == 200
    assert created.json()["id"] == again.json()["id"] == other_side.json()["id"]
    body = created.json()
    assert set(body) == ROOM_KEYS | {"members"}
    assert (body["kind"], body["visibility"], body["my_role"], body["member_count"]) == (
        "direct",
        "private",
        "member",
        2,
    )
    assert [member["id"] for member in body["members"]] == [alice.pk, bob.pk]
    assert Room.objects.filter(kind="direct").count() == 1


def test_dm_ignores_the_caller_and_repeats_in_the_list(client_for, alice, bob):
    first = client_for(alice).post(f"{API}/dms/", {"users": [bob.pk]}, format="json")
    same = client_for(alice).post(f"{API}/dms/", {"users": [bob.pk, alice.pk, bob.pk]}, format="json")

    assert same.status_code == 200
    assert same.json()["id"] == first.json()["id"]


def test_group_dm_lists_its_members_and_differs_from_the_pair(client_for, alice, bob, carol):
    pair = client_for(alice).post(f"{API}/dms/", {"users": [bob.pk]}, format="json").json()
    group = client_for(alice).post(f"{API}/dms/", {"users": [carol.pk, bob.pk]}, format="json")
    same_group = client_for(carol).post(f"{API}/dms/", {"users": [alice.pk, bob.pk]}, format="json")

    assert group.status_code == 201
    assert group.json()["id"] != pair["id"]
    assert [member["username"] for member in group.json()["members"]] == ["alice", "bob", "carol"]
    assert group.json()["member_count"] == 3
    assert same_group.status_code == 200
    assert same_group.json()["id"] == group.json()["id"]


@pytest.mark.parametrize(
    "body",
    [{"users": [999_999]}, {"users": "x"}, {"users": ["x"]}, {}, {"users": [], "name": "x"}],
    ids=["unknown-user", "not-a-list", "not-ids", "missing", "unknown-field"],
)
def test_dm_rejects_bad_input_and_creates_nothing(client_for, alice, body):
    response = client_for(alice).post(f"{API}/dms/", body, format="json")

    assert response.status_code == 400
    assert not Room.objects.exists()


def test_dm_with_an_unknown_user_names_the_field(client_for, alice, bob):
    response = client_for(alice).post(f"{API}/dms/", {"users": [bob.pk, 999_999]}, format="json")

    assert response.status_code == 400
    assert "users" in response.json()


def test_dm_with_an_inactive_user_is_400(client_for, alice, make_user):
    gone = make_user("gone", is_active=False)

    response = client_for(alice).post(f"{API}/dms/", {"users": [gone.pk]}, format="json")

    assert response.status_code == 400


def test_any_group_dm_member_may_add_someone(client_for, alice, bob, carol, mallory):
    group, _ = services.direct_open(creator=alice, user_ids=[bob.pk, carol.pk])

    response = client_for(bob).post(f"{API}/rooms/{group.pk}/members/", {"user": mallory.pk}, format="json")

    assert response.status_code == 201
    assert response.json()["role"] == "member"
    room = client_for(mallory).get(f"{API}/rooms/{group.pk}/").json()
    assert [member["username"] for member in room["members"]] == ["alice", "bob", "carol", "mallory"]


def test_adding_someone_to_a_1to1_dm_replies_with_a_new_group_dm_of_the_three(client_for, alice, bob, carol):
    pair, _ = services.direct_open(creator=alice, user_ids=[bob.pk])
    message_post(room=pair, author=alice, body="just between us")

    response = client_for(bob).post(f"{API}/rooms/{pair.pk}/members/", {"user": carol.pk}, format="json")

    assert response.status_code == 201
    group = response.json()
    assert group["id"] != pair.pk
    assert (group["kind"], group["my_role"]) == ("direct", "member")
    assert [member["username"] for member in group["members"]] == ["alice", "bob", "carol"]
    assert client_for(carol).get(f"{API}/rooms/{group['id']}/messages/").json()["results"] == []
    # The 1:1 is untouched: still the two of them, and still theirs alone.
    assert client_for(carol).get(f"{API}/rooms/{pair.pk}/").status_code == 404
    assert set(Membership.objects.filter(room=pair).values_list("user_id", flat=True)) == {alice.pk, bob.pk}


def test_dm_members_list_shows_everyone(client_for, alice, bob):
    dm, _ = services.direct_open(creator=alice, user_ids=[bob.pk])

    body = client_for(bob).get(f"{API}/rooms/{dm.pk}/members/").json()

    assert [(member["user"]["id"], member["role"]) for member in body["results"]] == [
        (alice.pk, "member"),
        (bob.pk, "member"),
    ]


# --- Read markers and unread counts -------------------------------------------------------------


def test_read_marker_moves_forward_and_never_back(client_for, lobby, alice, bob):
    first, second, third = (post(alice, lobby.pk, f"m{n}") for n in range(3))
    client = client_for(bob)

    forward = client.post(f"{API}/rooms/{lobby.pk}/read/", {"message_id": second.pk}, format="json")
    back = client.post(f"{API}/rooms/{lobby.pk}/read/", {"message_id": first.pk}, format="json")

    assert forward.status_code == back.status_code == 204
    assert Membership.objects.get(room=lobby, user=bob).last_read_message_id == second.pk
    assert mine(client, lobby.pk)["unread_count"] == 1
    assert third.pk > second.pk


def test_unread_count_starts_with_every_message_from_others(client_for, lobby, alice, bob, carol):
    for n in range(3):
        post(alice, lobby.pk, f"a{n}")
    post(carol, lobby.pk)
    post(bob, lobby.pk)

    assert mine(client_for(bob), lobby.pk)["unread_count"] == 4
    assert mine(client_for(alice), lobby.pk)["unread_count"] == 2


def test_unread_count_leaves_out_own_and_deleted_messages_and_those_read(client_for, lobby, alice, bob):
    read = post(alice, lobby.pk, "read")
    read_mark(user=bob, room=lobby, message_id=read.pk)
    post(alice, lobby.pk, "new")
    deleted = post(alice, lobby.pk, "oops")
    message_delete(actor=alice, message=deleted)
    post(bob, lobby.pk, "mine")
    post(alice, lobby.pk, "newer")

    room = mine(client_for(bob), lobby.pk)

    assert room["unread_count"] == 2
    assert client_for(bob).get(f"{API}/rooms/{lobby.pk}/").json()["unread_count"] == 2


def test_reading_up_to_the_last_message_clears_unread(client_for, lobby, alice, bob):
    last = [post(alice, lobby.pk, f"m{n}") for n in range(3)][-1]
    client = client_for(bob)

    client.post(f"{API}/rooms/{lobby.pk}/read/", {"message_id": last.pk}, format="json")

    assert mine(client, lobby.pk)["unread_count"] == 0


def test_read_marker_with_a_message_from_another_room_is_400(client_for, lobby, secret, alice, bob):
    elsewhere = post(alice, secret.pk)

    response = client_for(bob).post(f"{API}/rooms/{lobby.pk}/read/", {"message_id": elsewhere.pk}, format="json")

    assert response.status_code == 400
    assert "message_id" in response.json()
    assert Membership.objects.get(room=lobby, user=bob).last_read_message_id == 0


@pytest.mark.parametrize(
    "body",
    [{"message_id": 999_999}, {"message_id": "x"}, {"message_id": 0}, {}, {"message_id": 1, "room": 1}],
    ids=["unknown-message", "wrong-type", "zero", "missing", "unknown-field"],
)
def test_read_marker_rejects_bad_input(client_for, lobby, alice, bob, body):
    post(alice, lobby.pk)

    response = client_for(bob).post(f"{API}/rooms/{lobby.pk}/read/", body, format="json")

    assert response.status_code == 400


# --- Query counts -------------------------------------------------------------------------------


def rooms_of_alice(alice, others, count: int) -> None:  # type: ignore[no-untyped-def]
    for n in range(count):
        room = services.room_create(creator=alice, name=f"Room {n}", visibility="private" if n % 3 else "public")
        services.member_add(actor=alice, room=room, user_id=others[n % len(others)].pk)
        post(alice, room.pk)
    for other in others:
        services.direct_open(creator=alice, user_ids=[other.pk])


ROOM_LIST_MAX_QUERIES = 3


@pytest.mark.parametrize("count", [3, 30])
def test_room_list_query_count_stays_flat(client_for, django_assert_max_num_queries, alice, bob, carol, count):
    rooms_of_alice(alice, [bob, carol], count)
    client = client_for(alice)

    with django_assert_max_num_queries(ROOM_LIST_MAX_QUERIES):
        response = client.get(f"{API}/rooms/")

    assert len(response.json()) == count + 2


@pytest.mark.parametrize("count", [3, 30])
def test_public_room_list_query_count_stays_flat(client_for, django_assert_max_num_queries, alice, bob, carol, count):
    rooms_of_alice(alice, [bob, carol], count)
    client = client_for(bob)

    with django_assert_max_num_queries(ROOM_LIST_MAX_QUERIES):
        response = client.get(f"{API}/rooms/public/")

    assert len(response.json()["results"]) == len(range(0, count, 3))


@pytest.mark.parametrize("count", [3, 30])
def test_member_list_query_count_stays_flat(client_for, django_assert_max_num_queries, lobby, make_user, bob, count):
    for n in range(count):
        services.room_join(user=make_user(f"member{n}"), room=lobby)
    client = client_for(bob)

    with django_assert_max_num_queries(ROOM_LIST_MAX_QUERIES):
        response = client.get(f"{API}/rooms/{lobby.pk}/members/")

    assert len(response.json()["results"]) == count + 3


def test_adding_someone_to_a_1to1_dm_finds_the_group_dm_the_three_already_have(client_for, alice, bob, carol):
    group, _ = services.direct_open(creator=alice, user_ids=[bob.pk, carol.pk])
    pair, _ = services.direct_open(creator=alice, user_ids=[bob.pk])

    response = client_for(bob).post(f"{API}/rooms/{pair.pk}/members/", {"user": carol.pk}, format="json")

    assert response.status_code == 200
    assert response.json()["id"] == group.pk
    assert not Membership.objects.filter(room=pair, user=carol).exists()


def test_adding_someone_to_a_group_dm_that_would_duplicate_another_is_409(client_for, alice, bob, carol, mallory):
    services.direct_open(creator=alice, user_ids=[bob.pk, carol.pk, mallory.pk])
    group, _ = services.direct_open(creator=alice, user_ids=[bob.pk, carol.pk])

    response = client_for(bob).post(f"{API}/rooms/{group.pk}/members/", {"user": mallory.pk}, format="json")

    assert response.status_code == 409
    assert not Membership.objects.filter(room=group, user=mallory).exists()


def test_any_member_may_leave_a_group_dm(client_for, alice, bob, carol):
    group, _ = services.direct_open(creator=alice, user_ids=[bob.pk, carol.pk])

    response = client_for(carol).post(f"{API}/rooms/{group.pk}/leave/")

    assert response.status_code == 204
    assert set(Membership.objects.filter(room=group).values_list("user_id", flat=True)) == {alice.pk, bob.pk}
    assert client_for(carol).get(f"{API}/rooms/{group.pk}/").status_code == 404


def test_a_group_dm_someone_left_does_not_replace_the_pairs_dm(client_for, alice, bob, carol):
    pair, _ = services.direct_open(creator=alice, user_ids=[bob.pk])
    group, _ = services.direct_open(creator=alice, user_ids=[bob.pk, carol.pk])
    services.room_leave(user=carol, room=group)

    response = client_for(bob).post(f"{API}/dms/", {"users": [alice.pk]}, format="json")

    assert response.status_code == 200
    assert response.json()["id"] == pair.pk


def test_a_dm_left_by_one_of_three_is_found_by_the_remaining_pair(client_for, alice, bob, carol):
    group, _ = services.direct_open(creator=alice, user_ids=[bob.pk, carol.pk])
    services.room_leave(user=carol, room=group)

    response = client_for(bob).post(f"{API}/dms/", {"users": [alice.pk]}, format="json")

    assert response.status_code == 200
    assert response.json()["id"] == group.pk
    assert [member["username"] for member in response.json()["members"]] == ["alice", "bob"]


# --- Read state for the web UI: mention_count and last_read_message_id ---------------------------


def test_rooms_counts_unread_mentions_of_the_caller(client_for, lobby, alice, bob, carol):
    post(bob, lobby.pk, "hi @alice")
    post(carol, lobby.pk, "@ALICE and @bob, look")
    post(bob, lobby.pk, "no mention here")
    post(bob, lobby.pk, "`@alice` in code is no mention")

    assert mine(client_for(alice), lobby.pk)["mention_count"] == 2
    assert mine(client_for(bob), lobby.pk)["mention_count"] == 1
    assert mine(client_for(carol), lobby.pk)["mention_count"] == 0


def test_mention_count_drops_once_the_mention_is_read(client_for, lobby, alice, bob):
    first = post(bob, lobby.pk, "@alice one")
    post(bob, lobby.pk, "@alice two")

    read_mark(user=alice, room=lobby, message_id=first.pk)

    assert mine(client_for(alice), lobby.pk)["mention_count"] == 1


def test_mention_count_skips_deleted_messages_and_own_mentions(client_for, lobby, alice, bob):
    gone = post(bob, lobby.pk, "@alice soon gone")
    message_delete(actor=bob, message=gone)
    post(alice, lobby.pk, "note to self @alice")

    assert mine(client_for(alice), lobby.pk)["mention_count"] == 0


def test_rooms_show_the_callers_read_marker(client_for, lobby, alice, bob):
    message = post(bob, lobby.pk)
    read_mark(user=alice, room=lobby, message_id=message.pk)

    assert mine(client_for(alice), lobby.pk)["last_read_message_id"] == message.pk
    assert mine(client_for(bob), lobby.pk)["last_read_message_id"] == 0
