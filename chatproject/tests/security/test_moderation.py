"""Moderation in the Django admin and through the API (issue 5, item 8).

The reports queue shows the reported message in its conversation; its
actions delete the message, ban the author from the room or deactivate the
account (their sockets close at once); every moderator action lands in the
moderation log with who, what, when and why; the log is read-only.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from accounts.models import ModerationAction, User
from chatproject.tests.security.ws import asynctest, call, connect, fresh_realtime  # noqa: F401 - fixture
from core.errors import Forbidden
from messaging.models import Message, Report
from messaging.services import message_post, report_create
from rooms import services as rooms
from rooms.models import Ban, Membership

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(make_user: Any) -> User:
    return make_user("root", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(root: User) -> Client:
    client = Client()
    client.force_login(root)
    return client


@pytest.fixture
def reported(lobby: Any, alice: Any, bob: Any, carol: Any) -> Report:
    """bob's nasty message in lobby, between two harmless ones, reported by carol."""
    message_post(room=lobby, author=alice, body="good morning")
    nasty, _ = message_post(room=lobby, author=bob, body="buy <cheap> pills at spam.example")
    message_post(room=lobby, author=alice, body="please don't")
    report, _ = report_create(reporter=carol, message=nasty, reason="spam")
    return report


def act(client: Client, model: str, action: str, ids: list[int], reason: str = "spam, as reported") -> Any:
    return client.post(f"/admin/{model}/", {"action": action, "_selected_action": ids, "reason": reason}, follow=True)


def last_log() -> ModerationAction:
    entry = ModerationAction.objects.order_by("-id").first()
    assert entry is not None, "nothing was logged"
    return entry


# --- The reports queue ------------------------------------------------------------------------------


def test_the_queue_lists_open_reports_and_filters_by_status(admin_client: Client, reported: Report) -> None:
    page = admin_client.get("/admin/messaging/report/?status__exact=open")
    assert page.status_code == 200
    assert b"spam.example" in page.content
    assert admin_client.get("/admin/messaging/report/?status__exact=dismissed").context["cl"].result_count == 0


def test_a_report_shows_the_message_in_its_conversation_escaped(admin_client: Client, reported: Report) -> None:
    page = admin_client.get(f"/admin/messaging/report/{reported.pk}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    text = text[text.index("<th>sent</th>") :]  # the conversation table
    before, nasty, after = text.find("good morning"), text.find("buy &lt;cheap&gt; pills"), text.find("please don")
    assert -1 < before < nasty < after
    assert "<cheap>" not in text


def test_dismissing_a_report_needs_a_reason_and_is_logged(admin_client: Client, reported: Report, root: User) -> None:
    act(admin_client, "messaging/report", "dismiss", [reported.pk], reason="")
    reported.refresh_from_db()
    assert reported.status == Report.Status.OPEN  # refused without a reason
    assert not ModerationAction.objects.exists()

    act(admin_client, "messaging/report", "dismiss", [reported.pk], reason="satire, not spam")
    reported.refresh_from_db()
    assert (reported.status, reported.handled_by) == (Report.Status.DISMISSED, root)
    entry = last_log()
    assert (entry.actor, entry.action, entry.reason, entry.via) == (
        root,
        ModerationAction.Kind.REPORT_DISMISS,
        "satire, not spam",
        "admin",
    )
    assert (entry.report_id, entry.message_id, entry.target_username) == (reported.pk, reported.message_id, "bob")


def test_deleting_the_reported_message_tombstones_it_and_resolves_the_report(
    admin_client: Client, reported: Report, root: User, capture_events: Any
) -> None:
    with capture_events() as events:
        act(admin_client, "messaging/report", "delete_messages", [reported.pk])
    message = Message.objects.get(pk=reported.message_id)
    assert message.deleted and message.body == ""
    reported.refresh_from_db()
    assert reported.status == Report.Status.RESOLVED
    assert any(event.type == "message.updated" for event in events)  # members are told
    actions = set(ModerationAction.objects.values_list("action", flat=True))
    assert ModerationAction.Kind.MESSAGE_DELETE in actions
    deletion = ModerationAction.objects.get(action=ModerationAction.Kind.MESSAGE_DELETE)
    assert (deletion.actor, deletion.reason, deletion.room_id) == (root, "spam, as reported", message.room_id)


def test_banning_the_reported_author_removes_them_and_keeps_them_out(
    admin_client: Client, reported: Report, lobby: Any, bob: Any
) -> None:
    act(admin_client, "messaging/report", "ban_authors", [reported.pk])
    assert Ban.objects.filter(room=lobby, user=bob).exists()
    assert not Membership.objects.filter(room=lobby, user=bob).exists()
    reported.refresh_from_db()
    assert reported.status == Report.Status.RESOLVED
    assert ModerationAction.objects.filter(action=ModerationAction.Kind.MEMBER_BAN, target_user=bob).exists()
    with pytest.raises(Forbidden):
        rooms.room_join(user=bob, room=lobby)


def test_staff_ban_from_a_private_room_they_are_not_in(admin_client: Client, secret: Any, alice: Any, bob: Any) -> None:
    rooms.member_add(actor=alice, room=secret, user_id=bob.pk)
    message, _ = message_post(room=secret, author=bob, body="private spam")
    act(admin_client, "messaging/message", "ban_authors", [message.pk])
    assert Ban.objects.filter(room=secret, user=bob).exists()


def test_only_staff_may_ban_site_wide(lobby: Any, bob: Any, mallory: Any) -> None:
    with pytest.raises(Forbidden):
        rooms.member_ban(actor=mallory, room=lobby, user_id=bob.pk, site_moderator=True)
    assert not Ban.objects.exists()


def test_lifting_a_ban_in_the_admin_is_logged(admin_client: Client, lobby: Any, alice: Any, bob: Any) -> None:
    ban = rooms.member_ban(actor=alice, room=lobby, user_id=bob.pk, reason="cool off")
    act(admin_client, "rooms/ban", "lift_bans", [ban.pk], reason="served the time")
    assert not Ban.objects.exists()
    entry = last_log()
    assert (entry.action, entry.reason, entry.via) == (ModerationAction.Kind.MEMBER_UNBAN, "served the time", "admin")


# --- Message search ---------------------------------------------------------------------------------


def test_message_search_and_filters_by_room_author_and_date(
    admin_client: Client, reported: Report, lobby: Any, secret: Any, alice: Any, bob: Any
) -> None:
    message_post(room=secret, author=alice, body="pills are not spam here")

    def found(query: str) -> set[str]:
        page = admin_client.get(f"/admin/messaging/message/?{query}")
        assert page.status_code == 200, query
        return {message.body for message in page.context["cl"].result_list}

    assert found("q=pills") == {"buy <cheap> pills at spam.example", "pills are not spam here"}
    assert found(f"q=pills&room__id__exact={secret.pk}") == {"pills are not spam here"}
    assert found(f"author__id__exact={bob.pk}") == {"buy <cheap> pills at spam.example"}
    today = reported.created_at
    assert "good morning" in found(f"created_at__year={today.year}&created_at__month={today.month}")
    assert found("created_at__year=1999") == set()


# --- The moderation log -----------------------------------------------------------------------------


def test_the_log_is_visible_filterable_and_read_only(admin_client: Client, lobby: Any, alice: Any, bob: Any) -> None:
    rooms.member_ban(actor=alice, room=lobby, user_id=bob.pk, reason="flooding")
    page = admin_client.get("/admin/accounts/moderationaction/?action__exact=member.ban")
    assert page.status_code == 200
    assert page.context["cl"].result_count == 1
    assert b"flooding" in page.content
    assert (
        admin_client.get("/admin/accounts/moderationaction/?action__exact=user.deactivate").context["cl"].result_count
        == 0
    )
    assert admin_client.get("/admin/accounts/moderationaction/?q=flooding").context["cl"].result_count == 1
    entry = last_log()
    assert admin_client.get("/admin/accounts/moderationaction/add/").status_code == 403
    assert admin_client.post(f"/admin/accounts/moderationaction/{entry.pk}/delete/").status_code == 403
    change = admin_client.post(f"/admin/accounts/moderationaction/{entry.pk}/change/", {"reason": "rewritten"})
    assert change.status_code in (302, 403) or b"rewritten" not in change.content
    entry.refresh_from_db()
    assert entry.reason == "flooding"


def test_room_moderators_act_through_the_api_and_are_logged(
    lobby: Any, alice: Any, bob: Any, carol: Any, client_for: Any
) -> None:
    message, _ = message_post(room=lobby, author=bob, body="off-topic")
    assert client_for(carol).delete(f"/api/v1/messages/{message.pk}/").status_code == 204
    deletion = last_log()
    assert (deletion.actor, deletion.action, deletion.via) == (carol, ModerationAction.Kind.MESSAGE_DELETE, "api")
    response = client_for(alice).post(
        f"/api/v1/rooms/{lobby.pk}/bans/", {"user": bob.pk, "reason": "repeat offender"}, format="json"
    )
    assert response.status_code == 201
    ban = last_log()
    assert (ban.actor, ban.action, ban.reason, ban.target_user) == (
        alice,
        ModerationAction.Kind.MEMBER_BAN,
        "repeat offender",
        bob,
    )
    assert client_for(alice).delete(f"/api/v1/rooms/{lobby.pk}/bans/{bob.pk}/").status_code == 204
    assert last_log().action == ModerationAction.Kind.MEMBER_UNBAN


def test_people_deleting_their_own_words_are_not_moderation(lobby: Any, bob: Any, client_for: Any) -> None:
    message, _ = message_post(room=lobby, author=bob, body="oops")
    assert client_for(bob).delete(f"/api/v1/messages/{message.pk}/").status_code == 204
    assert not ModerationAction.objects.exists()


# --- Deactivation closes sockets at once --------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@asynctest
async def test_deactivating_from_the_reports_queue_closes_the_authors_sockets_at_once(
    fresh_realtime: None,  # noqa: F811 - the fixture imported above
    reported: Report,
    bob: Any,
    root: User,
) -> None:
    laptop, phone = await connect(bob), await connect(bob)

    def deactivate() -> None:
        client = Client()
        client.force_login(root)
        act(client, "messaging/report", "deactivate_authors", [reported.pk], reason="spam account")

    await call(deactivate)
    assert await laptop.close_code() == 4003
    assert await phone.close_code() == 4003
    refreshed = await call(User.objects.get, pk=bob.pk)
    assert refreshed.is_active is False
    entry = await call(last_log)
    assert (entry.action, entry.reason) in {
        (ModerationAction.Kind.USER_DEACTIVATE, "spam account"),
        (ModerationAction.Kind.REPORT_RESOLVE, "spam account"),
    }
    assert await call(ModerationAction.objects.filter(action=ModerationAction.Kind.USER_DEACTIVATE).count) == 1


# --- One case per reported message (trust issue, item 8) -----------------------------------------------------


@pytest.fixture
def case(reported: Report, alice: Any) -> Report:
    """bob's message reported twice: by carol (the first report) and by alice."""
    report_create(reporter=alice, message=reported.message, reason="offensive")
    return reported


def test_several_reports_on_one_message_are_one_case_in_the_queue(
    admin_client: Client, case: Report, lobby: Any, alice: Any, bob: Any, carol: Any
) -> None:
    other, _ = message_post(room=lobby, author=alice, body="also rude")
    report_create(reporter=bob, message=other, reason="rude")

    page = admin_client.get("/admin/messaging/report/?status__exact=open")

    rows = {report.message_id: report for report in page.context["cl"].result_list}
    assert set(rows) == {case.message_id, other.pk}
    assert (rows[case.message_id].pk, rows[case.message_id].case_size) == (case.pk, 2)


def test_resolving_a_case_closes_every_open_report_of_the_message_in_one_log_entry(
    admin_client: Client, case: Report, root: User
) -> None:
    act(admin_client, "messaging/report", "resolve", [case.pk], reason="handled")

    statuses = set(Report.objects.filter(message_id=case.message_id).values_list("status", "handled_by"))
    assert statuses == {(Report.Status.RESOLVED, root.pk)}
    entry = last_log()
    assert (entry.action, entry.report_id, entry.detail) == (
        ModerationAction.Kind.REPORT_RESOLVE,
        case.pk,
        "and 1 other report(s) of the message",
    )
    assert ModerationAction.objects.count() == 1
    assert admin_client.get("/admin/messaging/report/?status__exact=open").context["cl"].result_count == 0


def test_a_case_page_names_the_reporters_author_and_room_not_ids(admin_client: Client, case: Report) -> None:
    message = case.message

    text = admin_client.get(f"/admin/messaging/report/{case.pk}/change/").content.decode()

    for name in ("Carol (@carol)", "Alice (@alice)", "Bob (@bob)", "#lobby", "spam", "offensive"):
        assert name in text, name
    assert f"{message.pk} in {message.room_id} by {message.author_id}" not in text


def test_the_queue_names_the_reporter_author_and_room(admin_client: Client, case: Report) -> None:
    text = admin_client.get("/admin/messaging/report/?status__exact=open").content.decode()

    for name in ("Carol (@carol)", "Bob (@bob)", "#lobby"):
        assert name in text, name


def test_a_case_page_offers_each_action_as_a_button(admin_client: Client, case: Report) -> None:
    text = admin_client.get(f"/admin/messaging/report/{case.pk}/change/").content.decode()

    for name in ("resolve", "dismiss", "delete_message", "ban_author", "deactivate_author"):
        assert f'name="case_action" value="{name}"' in text, name
    assert 'name="_save"' not in text  # nothing on the page is saved as a form


def case_button(client: Client, report: Report, action: str, reason: str = "seen it") -> Any:
    return client.post(f"/admin/messaging/report/{report.pk}/change/", {"case_action": action, "reason": reason})


@pytest.mark.parametrize(
    ("action", "status"),
    [
        ("resolve", Report.Status.RESOLVED),
        ("dismiss", Report.Status.DISMISSED),
        ("delete_message", Report.Status.RESOLVED),
        ("ban_author", Report.Status.RESOLVED),
        ("deactivate_author", Report.Status.RESOLVED),
    ],
)
def test_each_button_on_a_case_page_acts_and_closes_the_whole_case(
    admin_client: Client, case: Report, lobby: Any, bob: Any, action: str, status: str
) -> None:
    response = case_button(admin_client, case, action)

    assert response.status_code == 302
    assert set(Report.objects.filter(message_id=case.message_id).values_list("status", flat=True)) == {status}
    message = Message.objects.get(pk=case.message_id)
    bob.refresh_from_db()
    outcome = {
        "delete_message": message.deleted,
        "ban_author": Ban.objects.filter(room=lobby, user=bob).exists(),
        "deactivate_author": not bob.is_active,
    }
    assert outcome.get(action, True)
    assert all(done is False for name, done in outcome.items() if name != action)


def test_a_case_button_without_a_reason_does_nothing(admin_client: Client, case: Report) -> None:
    case_button(admin_client, case, "dismiss", reason="")

    assert set(Report.objects.filter(message_id=case.message_id).values_list("status", flat=True)) == {"open"}
    assert not ModerationAction.objects.exists()


def test_case_buttons_need_the_right_to_handle_reports(case: Report, make_user: Any) -> None:
    viewer = make_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_report"))
    client = Client()
    client.force_login(viewer)

    assert client.get(f"/admin/messaging/report/{case.pk}/change/").status_code == 200
    assert case_button(client, case, "dismiss").status_code == 403
    assert set(Report.objects.filter(message_id=case.message_id).values_list("status", flat=True)) == {"open"}
