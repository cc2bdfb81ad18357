"""Names that cannot pass for someone else's.

Usernames are compared as log-in compares them (NFKC, then case folding):
registration refuses one that is another account's under that comparison or
that looks like one (`aIice`, `a1ice`). Display names lose the characters
that reorder or hide text, and one that was nothing but such characters is
refused.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import User
from accounts.names import display_name_clean, username_skeleton
from conftest import PASSWORD

pytestmark = pytest.mark.django_db


def register(username: str, *, display_name: str = "") -> Any:
    body = {
        "username": username,
        "email": f"{abs(hash(username))}@example.com",
        "password": PASSWORD,
        "display_name": display_name,
    }
    return APIClient().post("/api/v1/auth/register/", body, format="json")


def login(username: str) -> Any:
    return APIClient().post("/api/v1/auth/token/", {"username": username, "password": PASSWORD}, format="json")


# --- Usernames -------------------------------------------------------------------------------


def test_a_dotless_i_does_not_sign_in_as_alice(alice: Any) -> None:
    # ı upper-cases to I, so a case-insensitive database match took ALıCE for alice.
    assert login("AL\u0131CE").status_code == 401
    assert login("ALICE").status_code == 200


def test_compatibility_spellings_sign_in_as_the_plain_name(make_user: Any) -> None:
    make_user("staffer")
    for spelling in ("\u017ftaffer", "\uff53\uff54\uff41\uff46\uff46\uff45\uff52", "Staffer"):
        response = login(spelling)
        assert response.status_code == 200, spelling


def test_the_log_in_page_compares_usernames_the_same_way(alice: Any, make_user: Any) -> None:
    make_user("staffer")
    assert Client().post("/login/", {"username": "\u017ftaffer", "password": PASSWORD}).status_code == 302
    assert Client().post("/login/", {"username": "AL\u0131CE", "password": PASSWORD}).status_code == 200


@pytest.mark.parametrize("taken", ["ALICE", "\uff41\uff4c\uff49\uff43\uff45"])
def test_a_username_that_is_an_existing_one_once_normalised_is_taken(alice: Any, taken: str) -> None:
    response = register(taken)
    assert response.status_code == 400
    assert response.json() == {"username": ["That username is taken."]}


@pytest.mark.parametrize("lookalike", ["aIice", "a1ice", "b0b", "B0B", "rnallory", "bobvv"])
def test_a_username_that_looks_like_an_existing_one_is_refused(
    alice: Any, bob: Any, mallory: Any, make_user: Any, lookalike: str
) -> None:
    make_user("bobw")
    response = register(lookalike)
    assert response.status_code == 400, lookalike
    assert response.json() == {"username": ["That username looks too much like an existing one."]}
    assert not User.objects.filter(username=lookalike).exists()


def test_the_look_alike_check_works_in_both_directions(make_user: Any) -> None:
    make_user("lvan")
    assert register("Ivan").status_code == 400
    make_user("c1ara")
    assert register("clara").status_code == 400


@pytest.mark.parametrize("distinct", ["alicia", "ivan", "bobby", "m4llory", "al_ice"])
def test_a_username_that_only_resembles_is_allowed(alice: Any, bob: Any, mallory: Any, distinct: str) -> None:
    assert register(distinct).status_code == 201, register


def test_the_sign_up_page_refuses_a_look_alike_next_to_the_field(alice: Any) -> None:
    response = Client().post(
        "/signup/", {"username": "a1ice", "email": "fake@example.com", "password": PASSWORD, "display_name": ""}
    )
    assert response.status_code == 200
    assert "That username looks too much like an existing one." in response.content.decode()


def test_the_skeleton_follows_a_username_changed_anywhere(alice: Any) -> None:
    alice.username = "Al1ce"
    alice.save(update_fields=["username"])
    alice.refresh_from_db()
    assert alice.username_skeleton == username_skeleton("Al1ce") == "allce"


# --- Display names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("\u202eecilA", "ecilA"),  # right-to-left override
        ("\u2066Bob\u2069 ", "Bob"),  # isolates
        ("Al\u200bice", "Alice"),  # zero-width space
        ("Ali\u00adce\ufeff", "Alice"),  # soft hyphen, byte order mark
        ("Alice\u200e\u200f", "Alice"),  # direction marks
        ("Alice\n\tSmith", "Alice Smith"),
        ("Alice\u3000\u00a0Smith", "Alice Smith"),
        ("Al\u3164ice", "Alice"),  # Hangul filler, a letter that shows as blank
        ("\U0001f469\u200d\U0001f4bb Dev", "\U0001f469\u200d\U0001f4bb Dev"),  # woman technologist: one emoji
        ("\U0001f3f3\ufe0f\u200d\U0001f308", "\U0001f3f3\ufe0f\u200d\U0001f308"),  # rainbow flag
        ("A\u200dB", "AB"),  # a joiner between letters joins nothing
        ("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"),
        ("Zoë Ångström", "Zoë Ångström"),
    ],
)
def test_display_names_lose_the_characters_that_hide_or_reorder_text(given: str, kept: str) -> None:
    assert display_name_clean(given) == kept


def test_registration_and_the_profile_keep_the_cleaned_display_name(client_for: Any, bob: Any) -> None:
    response = register("newcomer", display_name="\u202eNew\u200bcomer")
    assert response.status_code == 201
    assert response.json()["user"]["display_name"] == "Newcomer"
    response = client_for(bob).patch("/api/v1/users/me/", {"display_name": "\u2067Bob\u2069"}, format="json")
    assert response.status_code == 200
    assert response.json()["display_name"] == "Bob"


@pytest.mark.parametrize("hidden", ["\u200b", "\u202e\u2066\u200d", "\u3164", "\u2800 \u115f"])
def test_a_display_name_of_nothing_but_hidden_characters_is_refused(client_for: Any, bob: Any, hidden: str) -> None:
    response = client_for(bob).patch("/api/v1/users/me/", {"display_name": hidden}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "display_name": ["Use some visible characters, or leave it empty to show your username."]
    }
    response = register("invisible", display_name=hidden)
    assert response.status_code == 400
    assert "display_name" in response.json()


def test_an_empty_display_name_still_means_the_username(client_for: Any, bob: Any) -> None:
    for empty in ("", "   "):
        response = client_for(bob).patch("/api/v1/users/me/", {"display_name": empty}, format="json")
        assert response.status_code == 200
        assert response.json()["display_name"] == "bob"
        bob.refresh_from_db()
        assert bob.display_name == ""


def test_the_profile_page_refuses_a_blank_display_name_next_to_the_field(client: Any, alice: Any) -> None:
    client.force_login(alice)
    html = client.post("/profile/", {"form": "profile", "display_name": "\u200b\u200b"}).content.decode()
    assert "Use some visible characters" in html
    alice.refresh_from_db()
    assert alice.display_name == "Alice"
