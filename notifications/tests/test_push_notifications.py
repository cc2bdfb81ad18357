"""Who is told of a message while away, by a real Web Push round trip.

Each test subscribes browsers to a push service on loopback that checks
the VAPID signature and decrypts every push with the browser's keys; the
job worker runs in the test on a clock the test moves.
"""

from __future__ import annotations

from typing import Any

import pytest

from messaging.services import message_delete, message_edit, message_post, read_mark
from notifications.models import Notification, PushSubscription
from notifications.notifier import CHANNEL_MENTION_FREE_MEMBERS, Member, recipients
from notifications.tests.conftest import dead_jobs
from rooms import services as room_services

pytestmark = pytest.mark.django_db

DELAY = 15


def post(room: Any, author: Any, body: str) -> Any:
    message, _ = message_post(room=room, author=author, body=body)
    return message


@pytest.fixture
def dm(alice: Any, bob: Any) -> Any:
    room, _ = room_services.direct_open(creator=alice, user_ids=[bob.pk])
    return room


def test_an_away_person_gets_one_signed_encrypted_push_for_a_dm(alice, bob, dm, subscribe, worker, receiver) -> None:
    phone = subscribe(bob, "bob-phone")
    mine = subscribe(alice, "alice-laptop")
    message = post(dm, alice, "Lunch at noon?")

    worker.notice()
    assert phone.received == []  # not before the delay: they may read it meanwhile
    worker.after(DELAY + 1)

    assert receiver.refused == []
    assert phone.received == [
        {
            "type": "message",
            "room": dm.pk,
            "message_id": message.pk,
            "title": "Alice",
            "body": "Lunch at noon?",
            "url": f"/rooms/{dm.pk}/?message={message.pk}",
        }
    ]
    assert mine.received == []  # never the author
    worker.notice()
    worker.after(3600)
    assert len(phone.received) == 1


def test_every_browser_of_the_person_gets_it(alice, bob, dm, subscribe, worker) -> None:
    phone, laptop = subscribe(bob, "phone"), subscribe(bob, "laptop")
    post(dm, alice, "hi")
    worker.notice()
    worker.after(DELAY + 1)
    assert len(phone.received) == len(laptop.received) == 1


def test_someone_who_reads_in_time_gets_nothing(alice, bob, dm, subscribe, worker) -> None:
    phone = subscribe(bob)
    message = post(dm, alice, "quick one")
    worker.notice()
    read_mark(user=bob, room=dm, message_id=message.pk)
    worker.notice()
    worker.after(DELAY + 1)
    assert phone.received == []
    assert Notification.objects.get().push_state == Notification.State.SKIPPED


def test_a_muted_room_notifies_nobody(alice, bob, dm, subscribe, worker, client_for) -> None:
    phone = subscribe(bob)
    client_for(bob).patch(
        f"/api/v1/rooms/{dm.pk}/notifications/", {"muted_until": "2999-01-01T00:00:00Z"}, format="json"
    )
    post(dm, alice, "anyone?")
    worker.notice()
    worker.after(DELAY + 1)
    assert phone.received == []
    assert not Notification.objects.exists()


def test_muting_during_the_delay_stops_the_push(alice, bob, dm, subscribe, worker, client_for) -> None:
    phone = subscribe(bob)
    post(dm, alice, "anyone?")
    worker.notice()
    client_for(bob).patch(f"/api/v1/rooms/{dm.pk}/notifications/", {"level": "none"}, format="json")
    worker.after(DELAY + 1)
    assert phone.received == []


def test_do_not_disturb_holds_everything(alice, bob, dm, subscribe, worker, client_for) -> None:
    phone = subscribe(bob)
    client_for(bob).patch("/api/v1/users/me/preferences/", {"dnd_until": "2999-01-01T00:00:00Z"}, format="json")
    post(dm, alice, "@bob urgent")
    worker.notice()
    worker.after(DELAY + 1)
    assert phone.received == []


def test_push_off_in_preferences_sends_no_push(alice, bob, dm, subscribe, worker, client_for) -> None:
    phone = subscribe(bob)
    client_for(bob).patch("/api/v1/users/me/preferences/", {"push": False}, format="json")
    post(dm, alice, "hello")
    worker.notice()
    worker.after(DELAY + 1)
    assert phone.received == []


def test_a_mention_in_a_mentions_room_notifies_only_the_mentioned(alice, bob, carol, lobby, subscribe, worker) -> None:
    bobs, carols = subscribe(bob), subscribe(carol)
    post(lobby, alice, "no one in particular")
    mention = post(lobby, alice, "@bob can you look?")
    worker.notice()
    worker.after(DELAY + 1)
    assert [push["message_id"] for push in bobs.received] == [mention.pk]
    assert bobs.received[0]["title"] == "Alice in #Lobby"
    assert carols.received == []


def test_a_room_at_all_notifies_every_message(alice, bob, lobby, subscribe, worker, client_for) -> None:
    bobs = subscribe(bob)
    client_for(bob).patch(f"/api/v1/rooms/{lobby.pk}/notifications/", {"level": "all"}, format="json")
    post(lobby, alice, "one")
    post(lobby, alice, "two")
    worker.notice()
    worker.after(DELAY + 1)
    assert [push["body"] for push in bobs.received] == ["one", "two"]


def test_level_none_silences_mentions_too(alice, bob, lobby, subscribe, worker, client_for) -> None:
    bobs = subscribe(bob)
    client_for(bob).patch(f"/api/v1/rooms/{lobby.pk}/notifications/", {"level": "none"}, format="json")
    post(lobby, alice, "@bob hello")
    worker.notice()
    worker.after(DELAY + 1)
    assert bobs.received == []


def test_at_channel_in_a_small_room_reaches_everyone_but_the_author(alice, bob, carol, lobby, subscribe, worker):
    bobs, carols, alices = subscribe(bob), subscribe(carol), subscribe(alice)
    post(lobby, bob, "@channel standup in 5")
    worker.notice()
    worker.after(DELAY + 1)
    assert len(carols.received) == len(alices.received) == 1
    assert bobs.received == []


def test_at_channel_in_a_big_room_is_for_owners_and_admins_only() -> None:
    from messaging.models import Message
    from rooms.models import Room

    room = Room(kind=Room.Kind.CHANNEL, name="big")
    members = [Member(user_id=1, role="owner", level="mentions", muted_until=None)]
    members += [Member(user_id=n, role="member", level="mentions", muted_until=None) for n in range(2, 60)]
    assert len(members) > CHANNEL_MENTION_FREE_MEMBERS

    def told(author_id: int) -> dict[int, str]:
        message = Message(author_id=author_id, body="@channel look")
        return recipients(message=message, room=room, members=members, mentioned=set(), dnd={}, now=None)  # type: ignore[arg-type]

    assert told(2) == {}
    assert set(told(1)) == {member.user_id for member in members} - {1}


def test_a_message_deleted_or_edited_away_in_the_delay_is_not_pushed(alice, bob, lobby, subscribe, worker) -> None:
    bobs = subscribe(bob)
    deleted = post(lobby, alice, "@bob oops")
    edited = post(lobby, alice, "@bob look")
    worker.notice()
    message_delete(actor=alice, message=deleted)
    message_edit(actor=alice, message=edited, body="never mind")
    worker.after(DELAY + 1)
    assert bobs.received == []
    assert set(Notification.objects.values_list("push_state", flat=True)) == {Notification.State.SKIPPED}


def test_someone_who_left_in_the_delay_is_not_pushed(alice, bob, lobby, subscribe, worker) -> None:
    bobs = subscribe(bob)
    post(lobby, alice, "@bob hey")
    worker.notice()
    room_services.room_leave(user=bob, room=lobby)
    worker.after(DELAY + 1)
    assert bobs.received == []


def test_reading_on_one_device_dismisses_on_the_others(alice, bob, dm, subscribe, worker) -> None:
    phone = subscribe(bob)
    message = post(dm, alice, "ping")
    worker.notice()
    worker.after(DELAY + 1)
    read_mark(user=bob, room=dm, message_id=message.pk)
    worker.notice()
    assert [push["type"] for push in phone.received] == ["message", "dismiss"]
    assert phone.received[1] == {"type": "dismiss", "room": dm.pk, "message_id": message.pk}
    worker.notice()
    assert len(phone.received) == 2


# --- Faults ----------------------------------------------------------------------------------


def test_the_notifier_decides_each_message_once_whatever_reruns(alice, bob, dm, subscribe, worker) -> None:
    from notifications.notifier import notifier_batch

    phone = subscribe(bob)
    post(dm, alice, "once")
    worker.notice()
    worker.notice()
    assert notifier_batch() is None  # caught up: nothing read twice
    worker.after(DELAY + 1)
    assert Notification.objects.count() == 1
    assert len(phone.received) == 1


def test_a_notifier_batch_that_fails_commits_nothing_and_is_read_again(alice, bob, dm, subscribe, worker) -> None:
    from notifications import notifier
    from notifications.models import NotifierCursor

    phone = subscribe(bob)
    post(dm, alice, "survives a crash")
    position = NotifierCursor.objects.get().position

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("worker died")

    original = notifier.events_after
    notifier.events_after = lambda cursor: [*original(cursor), crash()]  # type: ignore[assignment,func-returns-value]
    try:
        with pytest.raises(RuntimeError):
            notifier.notifier_batch()
    finally:
        notifier.events_after = original
    assert NotifierCursor.objects.get().position == position
    assert not Notification.objects.exists()

    worker.notice()
    worker.after(DELAY + 1)
    assert len(phone.received) == 1


def test_a_check_run_twice_pushes_once(alice, bob, dm, subscribe, worker) -> None:
    from notifications import push

    phone = subscribe(bob)
    post(dm, alice, "twice?")
    worker.notice()
    worker.after(DELAY + 1)
    notification = Notification.objects.get()
    push.message_push_enqueue(notification)  # as a second attempt of the check would
    worker.drain()
    assert len(phone.received) == 1


def test_a_gone_subscription_is_deleted(alice, bob, dm, subscribe, worker) -> None:
    phone = subscribe(bob)
    phone.answers.append((410, {}))
    post(dm, alice, "hello?")
    worker.notice()
    worker.after(DELAY + 1)
    assert not PushSubscription.objects.exists()


def test_too_many_requests_waits_for_retry_after(alice, bob, dm, subscribe, worker) -> None:
    phone = subscribe(bob)
    phone.answers.append((429, {"Retry-After": "120"}))
    post(dm, alice, "later")
    worker.notice()
    worker.after(DELAY + 1)
    assert phone.received == []
    worker.after(60)
    assert phone.received == []
    worker.after(61)
    assert len(phone.received) == 1


def test_a_failing_push_service_is_retried_with_backoff_then_given_up(alice, bob, dm, subscribe, worker) -> None:
    phone = subscribe(bob)
    phone.answers.extend([(500, {}), (503, {})])
    post(dm, alice, "retry me")
    worker.notice()
    worker.after(DELAY + 1)
    assert phone.received == []
    worker.after(60)
    worker.after(120)
    assert len(phone.received) == 1

    phone.answers.extend([(500, {})] * 10)
    post(dm, alice, "never arrives")
    worker.notice()
    for _ in range(10):
        worker.after(3600)
    assert len(phone.received) == 1
    assert any("answered 500" in error for error in dead_jobs())


def test_an_unreachable_push_service_is_retried(alice, bob, dm, subscribe, worker, receiver) -> None:
    phone = subscribe(bob)
    post(dm, alice, "are you there")
    worker.notice()
    PushSubscription.objects.update(endpoint="http://127.0.0.1:9/push/nowhere")
    worker.after(DELAY + 1)
    PushSubscription.objects.update(endpoint=phone.endpoint)
    worker.after(60)
    assert len(phone.received) == 1


def test_a_person_deleted_before_the_check_gets_nothing(alice, bob, dm, subscribe, worker) -> None:
    phone = subscribe(bob)
    post(dm, alice, "bye")
    worker.notice()
    bob.delete()
    worker.after(DELAY + 1)
    assert phone.received == []
    assert dead_jobs() == []


def test_checking_a_message_costs_the_same_queries_for_three_people_or_twelve(alice, make_user, worker) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from notifications.tasks import message_notifications_check

    def check_queries(size: int) -> int:
        members = [make_user(f"member{size}x{n}") for n in range(size)]
        room = room_services.room_create(creator=alice, name=f"crowd {size}")
        for member in members:
            room_services.room_join(user=member, room=room)
        message = post(room, alice, "@channel hello")
        worker.notice()
        assert Notification.objects.filter(message=message).count() == size
        with CaptureQueriesContext(connection) as queries:
            assert message_notifications_check.call(message.pk) == size
        return len(queries)

    assert check_queries(3) == check_queries(12)


def test_operators_see_notifications_in_the_admin_but_change_nothing(alice, bob, dm, subscribe, worker, admin_client):
    subscribe(bob)
    post(dm, alice, "seen by the admin")
    worker.notice()
    for page in ("notification", "pushsubscription", "preferences", "emailbatch"):
        assert admin_client.get(f"/admin/notifications/{page}/").status_code == 200
    notification = Notification.objects.get()
    assert admin_client.get(f"/admin/notifications/notification/{notification.pk}/change/").status_code == 200
    assert admin_client.get("/admin/notifications/notification/add/").status_code == 403


def reply(root: Any, author: Any, body: str, *, broadcast: bool = False) -> Any:
    message, _ = message_post(room=root.room_id, author=author, body=body, parent=root.pk, broadcast=broadcast)
    return message


def test_a_reply_notifies_the_threads_followers_and_not_a_room_at_all(
    alice, bob, carol, lobby, subscribe, worker, client_for
) -> None:
    alices, carols = subscribe(alice), subscribe(carol)
    client_for(carol).patch(f"/api/v1/rooms/{lobby.pk}/notifications/", {"level": "all"}, format="json")
    root = post(lobby, alice, "Release plan?")
    worker.notice()
    worker.after(DELAY + 1)
    assert [push["body"] for push in carols.received] == ["Release plan?"]

    answer = reply(root, bob, "Friday")  # alice started the thread, so she follows it
    worker.notice()
    worker.after(DELAY + 1)

    assert [(push["message_id"], push["url"]) for push in alices.received] == [
        (answer.pk, f"/rooms/{lobby.pk}/?message={answer.pk}")
    ]
    assert Notification.objects.get(message=answer).reason == Notification.Reason.THREAD
    assert [push["body"] for push in carols.received] == ["Release plan?"]  # the reply stayed in its thread


def test_a_reply_also_sent_to_the_room_reaches_a_room_at_all(alice, bob, carol, lobby, subscribe, worker, client_for):
    carols = subscribe(carol)
    client_for(carol).patch(f"/api/v1/rooms/{lobby.pk}/notifications/", {"level": "all"}, format="json")
    root = post(lobby, alice, "Release plan?")
    shared = reply(root, bob, "Friday, everyone", broadcast=True)
    worker.notice()
    worker.after(DELAY + 1)
    assert [push["message_id"] for push in carols.received] == [root.pk, shared.pk]


def test_reading_the_thread_in_the_delay_or_unfollowing_it_cancels_the_push(alice, bob, lobby, subscribe, worker):
    from messaging.threads import thread_follow, thread_read

    alices = subscribe(alice)
    first_root = post(lobby, alice, "First question")
    second_root = post(lobby, alice, "Second question")
    read_reply = reply(first_root, bob, "answered")
    reply(second_root, bob, "answered too")
    worker.notice()
    thread_read(user=alice, root=first_root, message_id=read_reply.pk)
    thread_follow(user=alice, root=second_root, following=False)
    worker.after(DELAY + 1)
    assert alices.received == []


def test_reading_the_room_does_not_count_as_reading_a_reply_kept_in_its_thread(alice, bob, lobby, subscribe, worker):
    alices = subscribe(alice)
    root = post(lobby, alice, "Question")
    answer = reply(root, bob, "answer")
    later = post(lobby, bob, "meanwhile in the room")
    worker.notice()
    read_mark(user=alice, room=lobby, message_id=later.pk)
    worker.after(DELAY + 1)
    assert [push["message_id"] for push in alices.received] == [answer.pk]


def test_at_here_reaches_only_the_members_online(alice, bob, carol, lobby, subscribe, worker) -> None:
    from asgiref.sync import async_to_sync

    from realtime import presence

    bobs, carols = subscribe(bob), subscribe(carol)
    async_to_sync(presence.sockets_open)(carol.pk, "carol-tab")
    try:
        post(lobby, alice, "@here who can review?")
        worker.notice()
        worker.after(DELAY + 1)
    finally:
        async_to_sync(presence.socket_closed)(carol.pk, "carol-tab")
    assert len(carols.received) == 1
    assert bobs.received == []


def test_at_here_from_a_plain_member_of_a_big_room_tells_nobody() -> None:
    from messaging.models import Message
    from rooms.models import Room

    room = Room(kind=Room.Kind.CHANNEL, name="big")
    members = [Member(user_id=n, role="member", level="mentions", muted_until=None) for n in range(1, 60)]
    message = Message(author_id=1, body="@here look")
    everyone_online = frozenset(range(1, 60))
    told = recipients(
        message=message, room=room, members=members, mentioned=set(), dnd={}, now=None, online=everyone_online
    )  # type: ignore[arg-type]
    assert told == {}
