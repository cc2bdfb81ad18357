"""History pages and search are read through indexes on PostgreSQL, so their cost does not grow with the table.

Each test runs the real selector, captures the SQL it issues and asks
PostgreSQL for the plan of that exact statement. The tables are small, so
sequential scans are switched off for the plan: what is asserted is that an
index *can* serve the query in the query's own order, which is what keeps a
page 900,000 messages deep as cheap as the newest one (bench/history.py
measures that at a million messages).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from messaging import selectors
from messaging.models import Message

pytestmark = [pytest.mark.services("postgres"), pytest.mark.django_db]


def fill(rooms, author, count: int) -> None:  # type: ignore[no-untyped-def]
    """Insert `count` messages spread over `rooms` in turn, so every room's ids are interleaved.

    One INSERT … SELECT: the ORM would spend seconds building the objects.
    """
    room_ids = [room.pk for room in rooms]
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO messaging_message (room_id, author_id, body, html, created_at) "
            "SELECT (%s::bigint[])[1 + n %% %s], %s, 'chatter ' || n, '<p>chatter ' || n || '</p>', now() "
            "FROM generate_series(0, %s - 1) AS n ORDER BY n",
            [room_ids, len(room_ids), author.pk, count],
        )


def plan_of_page_query(run: Callable[[], object]) -> str:
    """Run a selector and return PostgreSQL's plan for the statement that reads messaging_message."""
    with CaptureQueriesContext(connection) as captured:
        run()
    page_sql = next(q["sql"] for q in captured.captured_queries if 'FROM "messaging_message"' in q["sql"])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE messaging_message")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + page_sql)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.fixture
def busy_rooms(alice, lobby, secret):  # type: ignore[no-untyped-def]
    """20,000 messages, one in forty of them in the lobby, interleaved with the secret room's."""
    if connection.vendor != "postgresql":
        pytest.skip("the plan is PostgreSQL's")
    fill([lobby, *[secret] * 39], alice, 20_000)
    Message.objects.filter(room=lobby, body="chatter 400").update(body="the release went out")
    lobby_ids = list(Message.objects.filter(room=lobby).order_by("id").values_list("id", flat=True))
    return lobby, lobby_ids


def test_a_deep_history_page_is_read_backwards_through_the_room_and_id_index(busy_rooms):
    lobby, lobby_ids = busy_rooms

    plan = plan_of_page_query(lambda: selectors.message_history(room=lobby, before=lobby_ids[300], limit=50))

    assert "Index Scan Backward using message_room_id on messaging_message" in plan
    # Served in index order: nothing sorts the room's rows to find the page.
    assert "Sort" not in plan


def test_a_forward_history_page_is_read_through_the_room_and_id_index(busy_rooms):
    lobby, lobby_ids = busy_rooms

    plan = plan_of_page_query(lambda: selectors.message_history(room=lobby, after=lobby_ids[100], limit=50))

    assert "Index Scan using message_room_id on messaging_message" in plan
    assert "Sort" not in plan


def test_search_is_read_through_the_full_text_index(busy_rooms, bob):
    plan = plan_of_page_query(lambda: selectors.message_search(user=bob, query="release", limit=50))

    assert "message_body_search" in plan


def test_search_returns_the_newest_matches_when_they_lie_in_different_windows(alice, lobby):
    # PostgreSQL searches the newest 4,096 ids, then the next 28,672, then the
    # rest (selectors.SEARCH_WINDOWS); ids far apart put one match in each.
    base = 10**12
    newest = base + 100_000
    placed = {base + 100: "deploy one", base + 200: "deploy two", base + 80_000: "deploy three"}
    placed |= {base + 99_000: "deploy four", newest: "nothing to see"}
    Message.objects.bulk_create(
        Message(id=message_id, room=lobby, author=alice, body=body, html=f"<p>{body}</p>")
        for message_id, body in placed.items()
    )

    pages = []
    before = None
    for _ in range(5):
        page, has_more = selectors.message_search(user=alice, query="deploy", before=before, limit=1)
        pages.append(([m.pk for m in page], has_more))
        if not has_more:
            break
        before = page[-1].pk

    assert pages == [
        ([base + 99_000], True),
        ([base + 80_000], True),
        ([base + 200], True),
        ([base + 100], False),
    ]
