"""The messaging REST routes of docs/api.md: history, posting, editing, deleting, reactions, reports and search."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from messaging import services
from messaging.models import Message, MessageEdit, Reaction, Report
from messaging.payloads import MessagePayload
from rooms import services as room_services

pytestmark = pytest.mark.django_db

MISSING = 999_999_999
THUMBS_UP = "👍"
# The wire shape every message reply has: the payload type is the one list of fields.
MESSAGE_FIELDS = MessagePayload.__required_keys__


def history_url(room_id: int) -> str:
    return f"/api/v1/rooms/{room_id}/messages/"


def message_url(message_id: int) -> str:
    return f"/api/v1/messages/{message_id}/"


def reaction_url(message_id: int, emoji: str) -> str:
    return f"/api/v1/messages/{message_id}/reactions/{quote(emoji, safe='')}/"


def bulk_messages(room, author, count: int) -> list[int]:  # type: ignore[no-untyped-def]
    """Insert `count` messages in one statement and return their ids, oldest first."""
    Message.objects.bulk_create(
        Message(room=room, author=author, body=f"message {n}", html=f"<p>message {n}</p>") for n in range(count)
    )
    return list(Message.objects.filter(room=room).order_by("id").values_list("id", flat=True))


def ids(response) -> list[int]:  # type: ignore[no-untyped-def]
    return [message["id"] for message in response.json()["results"]]


# --- History ---------------------------------------------------------------------------


def test_history_of_an_empty_room_is_an_empty_page(client_for, bob, lobby):
    response = client_for(bob).get(history_url(lobby.pk))

    assert response.status_code == 200
    assert response.json() == {"results": [], "has_more": False}


def test_history_returns_the_newest_fifty_in_ascending_order_by_default(client_for, alice, lobby):
    all_ids = bulk_messages(lobby, alice, 60)

    response = client_for(alice).get(history_url(lobby.pk))

    assert response.status_code == 200
    assert ids(response) == all_ids[-50:]
    assert response.json()["has_more"] is True


def test_history_returns_at_most_two_hundred_messages_a_page(client_for, alice, lobby):
    all_ids = bulk_messages(lobby, alice, 201)

    response = client_for(alice).get(history_url(lobby.pk), {"limit": 200})

    assert response.status_code == 200
    assert ids(response) == all_ids[-200:]
    assert response.json()["has_more"] is True


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"limit": -5}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"before": -1}, "before"),
        ({"before": 0}, "before"),
        ({"before": "soon"}, "before"),
        ({"after": -1}, "after"),
        ({"after": "1.5"}, "after"),
        ({"before": 2**63}, "before"),
    ],
)
def test_history_refuses_bad_paging_parameters(client_for, alice, lobby, params, field):
    response = client_for(alice).get(history_url(lobby.pk), params)

    assert response.status_code == 400
    assert field in response.json()


def test_history_before_returns_the_older_messages_just_below_it(client_for, alice, lobby):
    all_ids = bulk_messages(lobby, alice, 10)

    response = client_for(alice).get(history_url(lobby.pk), {"before": all_ids[6], "limit": 3})

    assert ids(response) == all_ids[3:6]
    assert response.json()["has_more"] is True


def test_history_after_returns_the_newer_messages_just_above_it(client_for, alice, lobby):
    all_ids = bulk_messages(lobby, alice, 10)

    response = client_for(alice).get(history_url(lobby.pk), {"after": all_ids[2], "limit": 3})

    assert ids(response) == all_ids[3:6]
    assert response.json()["has_more"] is True


def test_history_with_before_and_after_returns_the_messages_between(client_for, alice, lobby):
    all_ids = bulk_messages(lobby, alice, 10)
    client = client_for(alice)

    first = client.get(history_url(lobby.pk), {"after": all_ids[1], "before": all_ids[8], "limit": 4})
    whole = client.get(history_url(lobby.pk), {"after": all_ids[1], "before": all_ids[8]})

    assert ids(first) == all_ids[2:6]
    assert first.json()["has_more"] is True
    assert ids(whole) == all_ids[2:8]
    assert whole.json()["has_more"] is False


def test_history_has_more_is_false_when_the_page_holds_exactly_the_rest(client_for, alice, lobby):
    all_ids = bulk_messages(lobby, alice, 5)
    client = client_for(alice)

    newest = client.get(history_url(lobby.pk), {"limit": 5}).json()
    older = client.get(history_url(lobby.pk), {"before": all_ids[2], "limit": 2}).json()
    newer = client.get(history_url(lobby.pk), {"after": all_ids[2], "limit": 2}).json()

    assert [m["id"] for m in newest["results"]] == all_ids and newest["has_more"] is False
    assert [m["id"] for m in older["results"]] == all_ids[:2] and older["has_more"] is False
    assert [m["id"] for m in newer["results"]] == all_ids[3:] and newer["has_more"] is False


def test_history_has_more_is_true_when_one_message_lies_beyond_the_page(client_for, alice, lobby):
    all_ids = bulk_messages(lobby, alice, 5)
    client = client_for(alice)

    assert client.get(history_url(lobby.pk), {"limit": 4}).json()["has_more"] is True
    assert client.get(history_url(lobby.pk), {"after": all_ids[0], "limit": 3}).json()["has_more"] is True


def test_history_beyond_either_end_is_empty(client_for, alice, lobby):
    all_ids = bulk_messages(lobby, alice, 3)
    client = client_for(alice)

    assert client.get(history_url(lobby.pk), {"before": all_ids[0]}).json() == {"results": [], "has_more": False}
    assert client.get(history_url(lobby.pk), {"after": all_ids[-1]}).json() == {"results": [], "has_more": False}


def test_history_holds_only_this_rooms_messages(client_for, alice, lobby, secret, say):
    mine = say(lobby, alice, "in the lobby")
    say(secret, alice, "in the secret room")

    response = client_for(alice).get(history_url(lobby.pk))

    assert ids(response) == [mine.pk]


def test_paging_backwards_through_ten_thousand_messages_sees_every_id_exactly_once(client_for, alice, lobby):
    all_ids = bulk_messages(lobby, alice, 10_000)
    client = client_for(alice)
    seen: list[int] = []
    before: int | None = None

    while True:
        params = {"limit": 200} if before is None else {"limit": 200, "before": before}
        page = client.get(history_url(lobby.pk), params).json()
        page_ids = [message["id"] for message in page["results"]]
        assert page_ids == sorted(page_ids)
        seen = page_ids + seen
        if not page["has_more"]:
            break
        before = page_ids[0]

    assert seen == all_ids
    assert len(set(seen)) == 10_000


def test_history_shows_a_deleted_message_as_a_tombstone(client_for, alice, lobby, say):
    message = say(lobby, alice, "regrettable")
    services.message_delete(actor=alice, message=message)

    [shown] = client_for(alice).get(history_url(lobby.pk)).json()["results"]

    assert shown["id"] == message.pk
    assert (shown["deleted"], shown["body"], shown["html"], shown["reactions"]) == (True, "", "", [])


# --- Posting ---------------------------------------------------------------------------


def test_posting_a_message_returns_201_with_the_whole_message(client_for, bob, lobby):
    response = client_for(bob).post(
        history_url(lobby.pk), {"body": "  hello *world*  ", "client_id": "c-1"}, format="json"
    )

    assert response.status_code == 201
    body = response.json()
    assert set(body) == MESSAGE_FIELDS
    assert body["room"] == lobby.pk
    assert body["author"] == {"id": bob.pk, "username": "bob", "display_name": "Bob"}
    assert body["body"] == "hello *world*"
    assert body["html"] == "<p>hello <em>world</em></p>"
    assert body["client_id"] == "c-1"
    assert body["parent"] is None
    assert body["created_at"].endswith("Z")
    assert body["edited_at"] is None
    assert body["deleted"] is False
    assert body["reactions"] == []
    assert Message.objects.get().pk == body["id"]


def test_a_message_lists_whom_it_mentions_in_the_reply_the_history_and_the_event(
    client_for, capture_events, alice, bob, carol, lobby
):
    client = client_for(alice)

    with capture_events() as events:
        posted = client.post(history_url(lobby.pk), {"body": "@carol and @Bob, look"}, format="json").json()
    [listed] = client.get(history_url(lobby.pk)).json()["results"]
    fetched = client.get(message_url(posted["id"])).json()

    expected = sorted([bob.pk, carol.pk])
    assert posted["mentions"] == listed["mentions"] == fetched["mentions"] == expected
    assert events[0].payload["message"]["mentions"] == expected


def test_a_body_quoting_mention_markup_mentions_nobody(client_for, alice, bob, lobby):
    body = f'<span class="mention" data-user-id="{bob.pk}">@bobby</span> data-user-id="{bob.pk}"'

    posted = client_for(alice).post(history_url(lobby.pk), {"body": body}, format="json").json()

    assert posted["mentions"] == []
    # The text is shown as text: the html holds the words, never a mention element.
    assert f'data-user-id="{bob.pk}"' in posted["html"]
    assert "<span" not in posted["html"]


def test_posting_the_same_client_id_again_returns_the_first_message_and_writes_one_row(client_for, bob, lobby):
    client = client_for(bob)

    first = client.post(history_url(lobby.pk), {"body": "once", "client_id": "retry-me"}, format="json")
    again = client.post(history_url(lobby.pk), {"body": "once", "client_id": "retry-me"}, format="json")

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == first.json()
    assert Message.objects.count() == 1


def test_the_same_client_id_from_another_author_makes_a_new_message(client_for, alice, bob, lobby):
    from_bob = client_for(bob).post(history_url(lobby.pk), {"body": "hi", "client_id": "shared"}, format="json")
    from_alice = client_for(alice).post(history_url(lobby.pk), {"body": "hi", "client_id": "shared"}, format="json")

    assert from_bob.status_code == from_alice.status_code == 201
    assert from_bob.json()["id"] != from_alice.json()["id"]
    assert Message.objects.count() == 2


def test_the_same_client_id_in_another_room_makes_a_new_message(client_for, alice, lobby, secret):
    client = client_for(alice)

    in_lobby = client.post(history_url(lobby.pk), {"body": "hi", "client_id": "shared"}, format="json")
    in_secret = client.post(history_url(secret.pk), {"body": "hi", "client_id": "shared"}, format="json")

    assert in_lobby.status_code == in_secret.status_code == 201
    assert (in_lobby.json()["room"], in_secret.json()["room"]) == (lobby.pk, secret.pk)


def test_posts_without_a_client_id_are_never_merged(client_for, bob, lobby):
    client = client_for(bob)

    first = client.post(history_url(lobby.pk), {"body": "same"}, format="json")
    second = client.post(history_url(lobby.pk), {"body": "same"}, format="json")

    assert first.status_code == second.status_code == 201
    assert Message.objects.count() == 2


def test_a_reply_to_a_message_in_the_same_room_is_accepted(client_for, alice, bob, lobby, say):
    question = say(lobby, alice, "lunch?")

    response = client_for(bob).post(history_url(lobby.pk), {"body": "yes", "parent": question.pk}, format="json")

    assert response.status_code == 201
    assert response.json()["parent"] == question.pk


def test_a_reply_to_a_message_in_another_room_is_refused(client_for, alice, lobby, secret, say):
    elsewhere = say(secret, alice, "hidden")

    response = client_for(alice).post(history_url(lobby.pk), {"body": "re", "parent": elsewhere.pk}, format="json")

    assert response.status_code == 400
    assert "parent" in response.json()
    assert not Message.objects.filter(room=lobby).exists()


def test_a_reply_to_an_unknown_message_is_refused(client_for, bob, lobby):
    response = client_for(bob).post(history_url(lobby.pk), {"body": "re", "parent": MISSING}, format="json")

    assert response.status_code == 400
    assert "parent" in response.json()
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    "body",
    ["", "   ", " \n\t ", "x" * 4001, " " + "y" * 4001 + " "],
    ids=["empty", "spaces", "whitespace", "4001 characters", "4001 characters padded"],
)
def test_an_empty_or_too_long_body_is_refused_and_nothing_is_written(client_for, bob, lobby, body):
    response = client_for(bob).post(history_url(lobby.pk), {"body": body}, format="json")

    assert response.status_code == 400
    assert "body" in response.json()
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        "\u200b",  # zero-width space
        "\u200b\u200c\u200d\u2060\ufeff",  # zero-width (non-)joiners, word joiner, BOM
        " \u200e\u200f \u202a\u202c ",  # direction marks and embeddings
        "\u3164\u115f\u1160\uffa0",  # Hangul fillers
        "\u2800\u2800",  # Braille blank
        "\ufe0f\u034f",  # a variation selector and the grapheme joiner, alone
        "\U000e0041\U000e007f",  # tag characters
        "\u00ad\u180e",  # soft hyphen, Mongolian vowel separator
    ],
)
def test_a_body_of_only_invisible_characters_is_refused_with_a_reason(client_for, bob, lobby, body):
    response = client_for(bob).post(history_url(lobby.pk), {"body": body, "client_id": "c"}, format="json")

    assert response.status_code == 400
    assert response.json() == {"body": ["A message needs at least one visible character."]}
    assert not Message.objects.exists()


@pytest.mark.parametrize("body", ["\u200bx", "👍🏽", "👨\u200d👩\u200d👧", "e\u0301", "\u0627\u0644\u200f"])
def test_a_body_with_something_visible_among_invisible_characters_is_kept_as_sent(client_for, bob, lobby, body):
    response = client_for(bob).post(history_url(lobby.pk), {"body": body}, format="json")

    assert response.status_code == 201
    assert response.json()["body"] == body


def test_a_body_of_4000_characters_after_trimming_is_accepted(client_for, bob, lobby):
    response = client_for(bob).post(history_url(lobby.pk), {"body": "\n  " + "x" * 4000 + "  "}, format="json")

    assert response.status_code == 201
    assert response.json()["body"] == "x" * 4000


def test_malformed_json_is_refused(client_for, bob, lobby):
    response = client_for(bob).post(history_url(lobby.pk), '{"body": "hi"', content_type="application/json")

    assert response.status_code == 400
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"body": 5}, "body"),
        ({"body": True}, "body"),
        ({"body": None}, "body"),
        ({"body": ["hi"]}, "body"),
        ({"body": {"text": "hi"}}, "body"),
        ({}, "body"),
        ({"body": "hi", "parent": "x"}, "parent"),
        ({"body": "hi", "parent": True}, "parent"),
        ({"body": "hi", "parent": 0}, "parent"),
        ({"body": "hi", "parent": 1.5}, "parent"),
        ({"body": "hi", "client_id": ["a"]}, "client_id"),
        ({"body": "hi", "client_id": 5}, "client_id"),
        ({"body": "hi", "client_id": "x" * 65}, "client_id"),
        ({"body": "hi", "colour": "red"}, "colour"),
        ({"body": "hi", "author": 1}, "author"),
    ],
    ids=repr,
)
def test_wrong_types_and_unknown_fields_are_refused(client_for, bob, lobby, payload, field):
    response = client_for(bob).post(history_url(lobby.pk), payload, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert not Message.objects.exists()


@pytest.mark.parametrize("payload", [[], ["body"], "hello", 42, None], ids=repr)
def test_a_json_document_that_is_not_an_object_is_refused(client_for, bob, lobby, payload):
    response = client_for(bob).post(history_url(lobby.pk), payload, format="json")

    assert response.status_code == 400
    assert not Message.objects.exists()


# --- One message: read, edit, delete ---------------------------------------------------


def test_a_member_can_fetch_a_message(client_for, alice, bob, lobby, say):
    message = say(lobby, alice, "hello")

    response = client_for(bob).get(message_url(message.pk))

    assert response.status_code == 200
    assert response.json()["id"] == message.pk
    assert response.json()["body"] == "hello"


def test_the_author_can_edit_their_message(client_for, bob, lobby, say):
    message = say(lobby, bob, "teh typo")

    response = client_for(bob).patch(message_url(message.pk), {"body": "the **fix**"}, format="json")

    assert response.status_code == 200
    assert response.json()["body"] == "the **fix**"
    assert response.json()["html"] == "<p>the <strong>fix</strong></p>"
    assert response.json()["edited_at"].endswith("Z")
    message.refresh_from_db()
    assert message.body == "the **fix**"
    assert message.edited_at is not None


def test_the_edit_history_lists_earlier_texts_oldest_first(client_for, alice, bob, lobby, say):
    message = say(lobby, bob, "first")
    client = client_for(bob)
    client.patch(message_url(message.pk), {"body": "second"}, format="json")
    client.patch(message_url(message.pk), {"body": "third"}, format="json")

    response = client_for(alice).get(f"{message_url(message.pk)}edits/")

    assert response.status_code == 200
    assert [edit["body"] for edit in response.json()] == ["first", "second"]
    assert all(edit["edited_at"].endswith("Z") for edit in response.json())


def test_a_message_never_edited_has_an_empty_edit_history(client_for, bob, lobby, say):
    message = say(lobby, bob, "as written")

    response = client_for(bob).get(f"{message_url(message.pk)}edits/")

    assert response.status_code == 200
    assert response.json() == []


@pytest.mark.parametrize("editor", ["alice", "carol"])
def test_nobody_but_the_author_may_edit_a_message(client_for, request, bob, lobby, say, editor):
    message = say(lobby, bob, "my words")

    response = client_for(request.getfixturevalue(editor)).patch(
        message_url(message.pk), {"body": "your words"}, format="json"
    )

    assert response.status_code == 403
    message.refresh_from_db()
    assert message.body == "my words"
    assert not MessageEdit.objects.exists()


@pytest.mark.parametrize(
    "payload",
    [{"body": ""}, {"body": "   "}, {"body": "\u200b\u2060"}, {"body": "x" * 4001}, {"body": 5}, {}, {"text": "x"}],
    ids=["empty", "blank", "invisible", "too long", "number", "missing", "unknown field"],
)
def test_an_invalid_edit_is_refused_and_keeps_the_text(client_for, bob, lobby, say, payload):
    message = say(lobby, bob, "keep me")

    response = client_for(bob).patch(message_url(message.pk), payload, format="json")

    assert response.status_code == 400
    message.refresh_from_db()
    assert message.body == "keep me"
    assert message.edited_at is None


@pytest.mark.parametrize("deleter", ["bob", "carol", "alice", "staff"], ids=["author", "admin", "owner", "staff"])
def test_the_author_a_room_moderator_or_staff_may_delete_a_message(client_for, request, bob, lobby, say, deleter):
    message = say(lobby, bob, "oops")

    response = client_for(request.getfixturevalue(deleter)).delete(message_url(message.pk))

    assert response.status_code == 204
    message.refresh_from_db()
    assert message.deleted
    assert message.body == ""


def test_staff_may_delete_a_message_in_a_private_room_they_are_not_in(client_for, alice, staff, secret, say):
    message = say(secret, alice, "hush")

    response = client_for(staff).delete(message_url(message.pk))

    assert response.status_code == 204
    message.refresh_from_db()
    assert message.deleted


def test_another_member_may_not_delete_a_message(client_for, alice, bob, lobby, say):
    message = say(lobby, alice, "not yours")

    response = client_for(bob).delete(message_url(message.pk))

    assert response.status_code == 403
    message.refresh_from_db()
    assert not message.deleted


def test_an_admin_may_not_delete_a_message_in_a_room_they_do_not_moderate(client_for, alice, carol, secret, say):
    message = say(secret, alice, "private")

    response = client_for(carol).delete(message_url(message.pk))

    assert response.status_code == 404
    message.refresh_from_db()
    assert not message.deleted


def test_deleting_a_deleted_message_again_is_harmless(client_for, bob, lobby, say):
    message = say(lobby, bob, "gone")
    client = client_for(bob)

    assert client.delete(message_url(message.pk)).status_code == 204
    assert client.delete(message_url(message.pk)).status_code == 204


def test_a_deleted_message_reads_as_a_tombstone_without_its_text(client_for, alice, bob, lobby, say):
    message = say(lobby, bob, "secret plans", client_id="c-9")
    services.reaction_add(user=alice, message=message, emoji=THUMBS_UP)
    client_for(bob).patch(message_url(message.pk), {"body": "even more secret plans"}, format="json")
    client_for(bob).delete(message_url(message.pk))

    shown = client_for(alice).get(message_url(message.pk))
    edits = client_for(alice).get(f"{message_url(message.pk)}edits/")

    assert shown.status_code == 200
    assert shown.json()["id"] == message.pk
    assert shown.json()["deleted"] is True
    assert (shown.json()["body"], shown.json()["html"], shown.json()["reactions"]) == ("", "", [])
    assert edits.json() == []


def test_a_deleted_message_cannot_be_edited(client_for, bob, lobby, say):
    message = say(lobby, bob, "gone")
    services.message_delete(actor=bob, message=message)

    response = client_for(bob).patch(message_url(message.pk), {"body": "back again"}, format="json")

    assert response.status_code == 400
    message.refresh_from_db()
    assert message.body == ""


def test_a_deleted_message_cannot_be_reacted_to(client_for, alice, bob, lobby, say):
    message = say(lobby, bob, "gone")
    services.message_delete(actor=bob, message=message)

    response = client_for(alice).post(f"{message_url(message.pk)}reactions/", {"emoji": THUMBS_UP}, format="json")

    assert response.status_code == 400
    assert not Reaction.objects.exists()


# --- Reactions -------------------------------------------------------------------------


def test_reacting_returns_201_then_200_for_the_same_reaction(client_for, alice, bob, lobby, say):
    message = say(lobby, alice, "cake in the kitchen")
    client = client_for(bob)

    first = client.post(f"{message_url(message.pk)}reactions/", {"emoji": THUMBS_UP}, format="json")
    again = client.post(f"{message_url(message.pk)}reactions/", {"emoji": THUMBS_UP}, format="json")

    assert first.status_code == 201
    assert first.json()["reactions"] == [{"emoji": THUMBS_UP, "count": 1, "users": [bob.pk]}]
    assert again.status_code == 200
    assert again.json() == first.json()
    assert Reaction.objects.count() == 1


def test_reactions_are_grouped_by_emoji_in_the_order_first_used(client_for, alice, bob, carol, lobby, say):
    message = say(lobby, alice, "ship it")
    services.reaction_add(user=bob, message=message, emoji="🎉")
    services.reaction_add(user=carol, message=message, emoji=":thumbsup:")
    services.reaction_add(user=carol, message=message, emoji="🎉")

    response = client_for(alice).get(message_url(message.pk))

    assert response.json()["reactions"] == [
        {"emoji": "🎉", "count": 2, "users": [bob.pk, carol.pk]},
        {"emoji": ":thumbsup:", "count": 1, "users": [carol.pk]},
    ]


@pytest.mark.parametrize("emoji", [THUMBS_UP, "👍🏽", "❤️", "👨‍👩‍👧", ":thumbsup:", ":+1:"])
def test_removing_your_reaction_by_its_url_encoded_emoji_returns_204(client_for, alice, bob, lobby, say, emoji):
    message = say(lobby, alice, "hello")
    services.reaction_add(user=bob, message=message, emoji=emoji)

    response = client_for(bob).delete(reaction_url(message.pk, emoji))

    assert response.status_code == 204
    assert not Reaction.objects.exists()


def test_removing_a_reaction_you_never_made_returns_404_and_keeps_the_others(client_for, alice, bob, lobby, say):
    message = say(lobby, alice, "hello")
    services.reaction_add(user=alice, message=message, emoji=THUMBS_UP)

    response = client_for(bob).delete(reaction_url(message.pk, THUMBS_UP))

    assert response.status_code == 404
    assert Reaction.objects.filter(user=alice).count() == 1


@pytest.mark.parametrize("raw_emoji", ["%00", "%F0%9F%91%8D%00", "abc", "%FF", "%ED%A0%80", "x" * 100])
def test_removing_a_reaction_that_is_no_emoji_returns_404(client_for, alice, bob, lobby, say, raw_emoji):
    message = say(lobby, alice, "hello")
    services.reaction_add(user=bob, message=message, emoji=THUMBS_UP)

    response = client_for(bob).delete(f"{message_url(message.pk)}reactions/{raw_emoji}/")

    assert response.status_code == 404
    assert Reaction.objects.count() == 1


@pytest.mark.parametrize(
    "emoji", ["", "   ", "abc", "a👍", "<script>", ":not a code:", "::", THUMBS_UP * 40, 5, None, ["👍"]], ids=repr
)
def test_a_reaction_that_is_not_an_emoji_is_refused(client_for, alice, bob, lobby, say, emoji):
    message = say(lobby, alice, "hello")

    response = client_for(bob).post(f"{message_url(message.pk)}reactions/", {"emoji": emoji}, format="json")

    assert response.status_code == 400
    assert "emoji" in response.json()
    assert not Reaction.objects.exists()


# --- Reports ---------------------------------------------------------------------------


def test_reporting_a_message_returns_201_then_200_for_a_repeat(client_for, alice, bob, lobby, say):
    message = say(lobby, alice, "buy cheap watches")
    client = client_for(bob)

    first = client.post(f"{message_url(message.pk)}report/", {"reason": "spam"}, format="json")
    again = client.post(f"{message_url(message.pk)}report/", {"reason": "still spam"}, format="json")

    assert first.status_code == 201
    assert first.json()["message"] == message.pk
    assert first.json()["status"] == "open"
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert Report.objects.count() == 1


@pytest.mark.parametrize(
    "payload",
    [{"reason": ""}, {"reason": "   "}, {}, {"reason": None}, {"reason": 5}, {"reason": "x" * 1001}],
    ids=["empty", "blank", "missing", "null", "number", "too long"],
)
def test_a_report_without_a_usable_reason_is_refused(client_for, alice, bob, lobby, say, payload):
    message = say(lobby, alice, "hmm")

    response = client_for(bob).post(f"{message_url(message.pk)}report/", payload, format="json")

    assert response.status_code == 400
    assert not Report.objects.exists()


def test_reporting_your_own_message_is_refused(client_for, bob, lobby, say):
    message = say(lobby, bob, "mine")

    response = client_for(bob).post(f"{message_url(message.pk)}report/", {"reason": "testing"}, format="json")

    assert response.status_code == 400
    assert not Report.objects.exists()


def test_a_deleted_message_cannot_be_reported(client_for, alice, bob, lobby, say):
    message = say(lobby, alice, "gone")
    services.message_delete(actor=alice, message=message)

    response = client_for(bob).post(f"{message_url(message.pk)}report/", {"reason": "spam"}, format="json")

    assert response.status_code == 400
    assert not Report.objects.exists()


# --- Who may see what ---------------------------------------------------------------------

MESSAGE_ROUTES = [
    ("get", "/api/v1/rooms/{room}/messages/", None),
    ("post", "/api/v1/rooms/{room}/messages/", {"body": "let me in"}),
    ("get", "/api/v1/messages/{message}/", None),
    ("patch", "/api/v1/messages/{message}/", {"body": "defaced"}),
    ("delete", "/api/v1/messages/{message}/", None),
    ("get", "/api/v1/messages/{message}/edits/", None),
    ("post", "/api/v1/messages/{message}/reactions/", {"emoji": THUMBS_UP}),
    ("delete", "/api/v1/messages/{message}/reactions/%F0%9F%91%8D/", None),
    ("post", "/api/v1/messages/{message}/report/", {"reason": "spam"}),
]
ROUTE_IDS = [f"{method} {path}" for method, path, _ in MESSAGE_ROUTES]


def call(client, method: str, path: str, data: object, *, room: int, message: int):  # type: ignore[no-untyped-def]
    url = path.format(room=room, message=message)
    if data is None:
        return getattr(client, method)(url)
    return getattr(client, method)(url, data, format="json")


@pytest.fixture
def hidden_message(alice, secret, say):  # type: ignore[no-untyped-def]
    """A message by alice in the private room, with her reaction on it."""
    message = say(secret, alice, "the plan")
    services.reaction_add(user=alice, message=message, emoji=THUMBS_UP)
    return message


@pytest.mark.parametrize(("method", "path", "data"), MESSAGE_ROUTES, ids=ROUTE_IDS)
def test_outsiders_get_404_for_a_private_room_exactly_as_for_a_missing_one(
    client_for, mallory, secret, hidden_message, method, path, data
):
    client = client_for(mallory)

    hidden = call(client, method, path, data, room=secret.pk, message=hidden_message.pk)
    missing = call(client, method, path, data, room=MISSING, message=MISSING)

    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()
    hidden_message.refresh_from_db()
    assert (hidden_message.body, hidden_message.deleted) == ("the plan", False)
    assert Message.objects.count() == 1
    assert Reaction.objects.count() == 1
    assert not Report.objects.exists()


@pytest.mark.parametrize(("method", "path", "data"), MESSAGE_ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("huge", [2**63, 10**30])
def test_ids_beyond_64_bits_are_simply_not_found(client_for, alice, staff, method, path, data, huge):
    for caller in (alice, staff):
        response = call(client_for(caller), method, path, data, room=huge, message=huge)

        assert response.status_code == 404


@pytest.mark.parametrize(
    "data", [{"body": ""}, {"body": 5}, {"nonsense": True}, {"body": "hi", "parent": MISSING}], ids=repr
)
def test_outsiders_posting_bad_input_to_a_private_room_get_404_not_400(client_for, mallory, secret, data):
    response = client_for(mallory).post(history_url(secret.pk), data, format="json")

    assert response.status_code == 404


@pytest.mark.parametrize(("method", "path", "data"), MESSAGE_ROUTES, ids=ROUTE_IDS)
def test_non_members_get_403_in_a_public_channel(client_for, alice, mallory, lobby, say, method, path, data):
    message = say(lobby, alice, "members only")
    services.reaction_add(user=alice, message=message, emoji=THUMBS_UP)

    response = call(client_for(mallory), method, path, data, room=lobby.pk, message=message.pk)

    assert response.status_code == 403
    message.refresh_from_db()
    assert (message.body, message.deleted) == ("members only", False)
    assert Message.objects.count() == 1
    assert Reaction.objects.count() == 1
    assert not Report.objects.exists()


def test_a_member_who_left_a_private_room_can_no_longer_see_its_messages(client_for, alice, bob, secret, say):
    room_services.member_add(actor=alice, room=secret, user_id=bob.pk)
    message = say(secret, alice, "before you go")
    room_services.room_leave(user=bob, room=secret)

    client = client_for(bob)

    assert client.get(history_url(secret.pk)).status_code == 404
    assert client.get(message_url(message.pk)).status_code == 404


def test_outsiders_get_404_for_a_direct_conversation(client_for, alice, bob, mallory, say):
    dm, _ = room_services.direct_open(creator=alice, user_ids=[bob.pk])
    message = say(dm, bob, "just between us")
    client = client_for(mallory)

    assert client.get(history_url(dm.pk)).status_code == 404
    assert client.post(history_url(dm.pk), {"body": "hi"}, format="json").status_code == 404
    assert client.get(message_url(message.pk)).status_code == 404
    assert client_for(alice).get(message_url(message.pk)).status_code == 200


def test_the_messages_of_a_deleted_room_are_gone_for_everyone(client_for, alice, bob, staff, lobby, say):
    message = say(lobby, bob, "farewell party")
    room_services.room_delete(actor=alice, room=lobby)

    assert client_for(bob).get(history_url(lobby.pk)).status_code == 404
    assert client_for(bob).post(history_url(lobby.pk), {"body": "hello?"}, format="json").status_code == 404
    assert client_for(bob).get(message_url(message.pk)).status_code == 404
    assert client_for(staff).delete(message_url(message.pk)).status_code == 404
    assert client_for(bob).get("/api/v1/search/messages/", {"q": "farewell"}).json()["results"] == []


@pytest.mark.parametrize(
    ("method", "path", "data"), [*MESSAGE_ROUTES, ("get", "/api/v1/search/messages/?q=plan", None)]
)
def test_anonymous_callers_get_401_on_every_route(anon, lobby, alice, say, method, path, data):
    message = say(lobby, alice, "the plan")

    response = call(anon, method, path, data, room=lobby.pk, message=message.pk)

    assert response.status_code == 401
    assert Message.objects.count() == 1


# --- Search ------------------------------------------------------------------------------

SEARCH_URL = "/api/v1/search/messages/"


def test_search_finds_messages_by_word(client_for, alice, bob, lobby, say):
    hit = say(lobby, alice, "Who wants pizza for lunch?")
    say(lobby, alice, "The meeting moved to Tuesday")

    response = client_for(bob).get(SEARCH_URL, {"q": "pizza"})

    assert response.status_code == 200
    assert ids(response) == [hit.pk]
    assert response.json()["has_more"] is False


def test_search_never_returns_messages_from_rooms_the_caller_is_not_in(client_for, alice, bob, lobby, secret, say):
    say(secret, alice, "launch codes are hidden here")
    say(lobby, alice, "launch party on friday")
    client = client_for(bob)

    everywhere = client.get(SEARCH_URL, {"q": "launch"})
    asked_for = client.get(SEARCH_URL, {"q": "launch", "room": secret.pk})

    assert [m["body"] for m in everywhere.json()["results"]] == ["launch party on friday"]
    assert asked_for.status_code == 200
    assert asked_for.json() == {"results": [], "has_more": False}


def test_search_ignores_public_channels_the_caller_has_not_joined(client_for, alice, mallory, lobby, say):
    say(lobby, alice, "launch party on friday")
    client = client_for(mallory)

    assert client.get(SEARCH_URL, {"q": "launch"}).json()["results"] == []
    assert client.get(SEARCH_URL, {"q": "launch", "room": lobby.pk}).json()["results"] == []


def test_search_can_be_narrowed_to_one_room(client_for, alice, lobby, secret, say):
    in_lobby = say(lobby, alice, "budget review")
    say(secret, alice, "budget secrets")

    response = client_for(alice).get(SEARCH_URL, {"q": "budget", "room": lobby.pk})

    assert ids(response) == [in_lobby.pk]


def test_search_leaves_out_deleted_messages(client_for, alice, bob, lobby, say):
    kept = say(lobby, alice, "the password is in the vault")
    gone = say(lobby, bob, "the password is hunter2")
    services.message_delete(actor=bob, message=gone)

    response = client_for(alice).get(SEARCH_URL, {"q": "password"})

    assert ids(response) == [kept.pk]


def test_search_returns_newest_first_and_pages_with_before(client_for, alice, lobby, say):
    found = [say(lobby, alice, f"standup note {n}").pk for n in range(5)]
    say(lobby, alice, "unrelated chatter")
    client = client_for(alice)

    first = client.get(SEARCH_URL, {"q": "standup", "limit": 2}).json()
    second = client.get(SEARCH_URL, {"q": "standup", "limit": 2, "before": first["results"][-1]["id"]}).json()
    last = client.get(SEARCH_URL, {"q": "standup", "limit": 2, "before": second["results"][-1]["id"]}).json()

    assert [m["id"] for m in first["results"]] == found[:-3:-1]
    assert first["has_more"] is True
    assert [m["id"] for m in second["results"]] == found[2:0:-1]
    assert second["has_more"] is True
    assert [m["id"] for m in last["results"]] == [found[0]]
    assert last["has_more"] is False


@pytest.mark.parametrize("params", [{}, {"q": ""}, {"q": "   "}], ids=repr)
def test_search_without_words_is_refused(client_for, alice, params):
    response = client_for(alice).get(SEARCH_URL, params)

    assert response.status_code == 400
    assert "q" in response.json()


@pytest.mark.parametrize(
    "params", [{"q": "x", "room": "lobby"}, {"q": "x", "before": 0}, {"q": "x", "limit": 201}, {"q": "x" * 201}]
)
def test_search_refuses_bad_parameters(client_for, alice, params):
    assert client_for(alice).get(SEARCH_URL, params).status_code == 400


# --- Query counts --------------------------------------------------------------------------

# Authenticate, check membership, load the page, load its reactions, mentions and attachments.
HISTORY_QUERIES = 6
# Authenticate, load the page (the membership check is a subquery), load its reactions, mentions and attachments.
SEARCH_QUERIES = 5


@pytest.fixture
def busy_lobby(alice, bob, carol, lobby):  # type: ignore[no-untyped-def]
    """The lobby with 100 'standup' messages, each with reactions from three people."""
    message_ids = bulk_messages(lobby, alice, 100)
    Message.objects.filter(pk__in=message_ids).update(body="standup")
    Reaction.objects.bulk_create(
        Reaction(message_id=message_id, user=user, emoji=emoji)
        for message_id in message_ids
        for user in (alice, bob, carol)
        for emoji in (THUMBS_UP, "🎉")
    )
    return lobby


def count_queries(client, url: str, params: dict[str, object]) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, params)
    assert response.status_code == 200
    return len(queries), response.json()


def test_history_query_count_does_not_grow_with_the_page(client_for, bob, busy_lobby, django_assert_max_num_queries):
    client = client_for(bob)

    with django_assert_max_num_queries(HISTORY_QUERIES):
        small, small_page = count_queries(client, history_url(busy_lobby.pk), {"limit": 5})
    with django_assert_max_num_queries(HISTORY_QUERIES):
        large, large_page = count_queries(client, history_url(busy_lobby.pk), {"limit": 100})

    assert small == large
    assert len(small_page["results"]) == 5
    assert len(large_page["results"]) == 100
    assert all(len(m["reactions"]) == 2 and m["reactions"][0]["count"] == 3 for m in large_page["results"])


def test_search_query_count_does_not_grow_with_the_page(client_for, bob, busy_lobby, django_assert_max_num_queries):
    client = client_for(bob)

    with django_assert_max_num_queries(SEARCH_QUERIES):
        small, small_page = count_queries(client, SEARCH_URL, {"q": "standup", "limit": 5})
    with django_assert_max_num_queries(SEARCH_QUERIES):
        large, large_page = count_queries(client, SEARCH_URL, {"q": "standup", "limit": 100})

    assert small == large
    assert len(small_page["results"]) == 5
    assert len(large_page["results"]) == 100
    assert all(len(m["reactions"]) == 2 for m in large_page["results"])
