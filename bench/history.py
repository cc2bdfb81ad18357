"""Measure history paging and search over HTTP on a room of a million messages.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chat \\
        .venv/bin/python bench/history.py --messages 1000000 --out bench/results/history.json

PostgreSQL only (the tool refuses SQLite: the seeding uses COPY and the
search index under test exists only there). The tool uses its own database
(`--db-name`, default `chatbench_history`) on the server DATABASE_URL names,
creates it and runs `manage.py migrate` on it, then seeds:

- `--users` users and one public channel (`history-bench`) they have all
  joined, made through the room services, so rooms and memberships are the
  real thing;
- `--messages` messages in that room, loaded with PostgreSQL COPY. Seeding
  bypasses the posting service (no events, mentions or renderer per row), so
  `html` is written as the renderer's output for plain words,
  `<p>escaped body</p>` (the tool checks that on a sample of bodies against
  `messaging.markdown.render`). Bodies are 4–18 words drawn with Zipf-like
  weights from a small team-chat vocabulary, so common words are common and
  search is meaningful; a rare word is planted in exactly RARE_HITS messages
  spread over the whole history and a phrase in one message of PHRASE_EVERY.
  `created_at` rises by one second per message. The table's secondary
  indexes are dropped and rebuilt around the COPY, in the same transaction
  (a failed load leaves the table as it was), then the table is vacuumed
  and analysed.

A later run with the same `--messages` reuses the seeded database (it counts
the room's messages); `--reseed` drops and reseeds it, as does a different
size. Migrations are applied on every run, so a new index is built on the
seeded table.

Then it starts the real server as bench/loadtest.py does (Daphne serving
`chatproject.asgi` in production mode, pinned to CPU 0, this process on CPU
1) and, with one member's JWT over one keep-alive HTTP connection, requests
each case `--requests` times after `--warmup` requests, one request at a
time and the cases interleaved so machine noise falls on all alike:

- history newest: `GET /api/v1/rooms/{id}/messages/` (the newest 50);
- history middle / deep: the same with `before=<id>` so that half / 90 % of
  the room's messages are newer than the page (900,000 deep at 1M);
- search common / rare / phrase: `GET /api/v1/search/messages/?q=` for a
  word in a few percent of messages, the planted rare word and the planted
  three-word phrase.

For each case it prints and records p50/p95/p99/max milliseconds (the
client's wall time per request), and the plan of the case's page query:
the tool runs the same selector in-process, captures the SQL it issues and
runs `EXPLAIN (ANALYZE, BUFFERS)` on it, so the plan shows which index
serves the page. It also times each selector in-process (`--db-requests`
calls per case, interleaved, no HTTP): the database's share of a request,
apart from Daphne, auth and serialisation. JSON goes to `--out`. Every run is bounded: `--timeout`
seconds for the measuring phase, COPY in chunks with a progress line.
"""

from __future__ import annotations

import argparse
import html
import http.client
import json
import os
import random
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

# bench/ is on sys.path when run as a script; the project is one level up.
PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))
sys.path.insert(1, str(PROJECT_DIR / "bench"))

from loadtest import HOST, OurServer, machine, summarize_ms  # noqa: E402

ROOM_NAME = "history-bench"
USER_PREFIX = "hist_u"
PAGE_LIMIT = 50
# The rare word appears in exactly this many messages, evenly spread.
RARE_WORD = "zanzibar"
RARE_HITS = 20
# The phrase is planted in one message of this many.
PHRASE = "flaky integration test"
PHRASE_EVERY = 2000
# Present in a few percent of messages through its vocabulary rank (checked and reported).
COMMON_WORD = "deploy"
COPY_CHUNK = 50_000

TARGETS = {"history_newest_p99_ms": 20.0, "deep_over_newest": 1.2, "search_p99_ms": 100.0}

# Ordered roughly by how often chat uses them: the first ones are stop words,
# which the Zipf weights make appear in most messages, as in real chat.
VOCABULARY = """
the to a i is and it we for on that this in you of be can with have so just not are at
it's but if will do was what all get there up now about me out think one from our should
know need see by or like don't going new when make more they let can't back time check
yes no ok looks good thanks today tomorrow deploy build fix issue branch merge review
team work still also morning please sure maybe done next week then again test pr main
yeah right any some how looking here would did into after before try update change code
server client release bug ticket sprint meeting call later lunch coffee config database
query index cache page error log alert ticketing customer feature design doc spec plan
staging production rollback hotfix patch version api endpoint latency timeout retry queue
worker job cron script pipeline ci green red broken passing failing flaky integration unit
migration schema column table row backup restore disk memory cpu graph dashboard metric
incident oncall pager weekend friday monday standup retro demo roadmap estimate scope
priority blocker ping dm thread channel notes draft slides budget hiring interview offer
onboarding laptop vpn password token secret key certificate domain dns proxy load balancer
container image registry cluster node pod helm terraform ansible docker kubernetes linux
python django postgres redis websocket frontend backend mobile android ios browser safari
chrome firefox css layout button modal form input validation translation locale timezone
invoice billing plan pricing trial signup login logout session cookie csrf cors header
payload json yaml csv export import report chart search filter sort pagination cursor
""".split()  # noqa: SIM905 (reads as text)


def body_words(rng: random.Random, count: int, cumulative: list[float]) -> list[str]:
    return rng.choices(VOCABULARY, cum_weights=cumulative, k=count)


def zipf_cumulative(size: int) -> list[float]:
    total = 0.0
    out = []
    for rank in range(1, size + 1):
        total += 1.0 / rank
        out.append(total)
    return out


def render_plain(body: str) -> str:
    """What messaging.markdown.render gives for a body of plain words (checked on a sample)."""
    return f"<p>{html.escape(body, quote=False)}</p>"


def message_bodies(count: int, seed: int = 6) -> Iterator[str]:
    """Yield `count` message bodies: Zipf-weighted words, the rare word and the phrase planted."""
    rng = random.Random(seed)  # noqa: S311 (test data, repeatable)
    cumulative = zipf_cumulative(len(VOCABULARY))
    rare_every = max(1, count // RARE_HITS)
    for index in range(count):
        words = body_words(rng, rng.randint(4, 18), cumulative)
        if index % rare_every == rare_every // 2 and index // rare_every < RARE_HITS:
            words.insert(rng.randrange(len(words) + 1), RARE_WORD)
        if index % PHRASE_EVERY == PHRASE_EVERY // 3:
            words.insert(rng.randrange(len(words) + 1), PHRASE)
        words[0] = words[0].capitalize()
        yield " ".join(words)


# --- Database ----------------------------------------------------------------------------------


def bench_urls(database_url: str, db_name: str) -> tuple[str, str]:
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(path=f"/{db_name}")), urlunsplit(parts._replace(path="/postgres"))


def seeded_count(database_url: str, db_name: str) -> int | None:
    """Return how many messages the bench room holds, or None when there is no seeded room."""
    import psycopg

    bench_url, maintenance_url = bench_urls(database_url, db_name)
    with psycopg.connect(maintenance_url, autocommit=True) as connection:
        if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db_name]).fetchone() is None:
            return None
    with psycopg.connect(bench_url, autocommit=True) as connection:
        try:
            row = connection.execute(
                "SELECT count(*) FROM messaging_message m JOIN rooms_room r ON r.id = m.room_id WHERE r.slug = %s",
                [ROOM_NAME],
            ).fetchone()
        except psycopg.errors.UndefinedTable:
            return None
    return int(row[0]) if row else None


def drop_database(database_url: str, db_name: str) -> None:
    import psycopg

    _, maintenance_url = bench_urls(database_url, db_name)
    with psycopg.connect(maintenance_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{db_name}"')


def setup_django(env: dict[str, str]) -> None:
    """Configure Django in this process with the server's settings, so tokens and queries match it."""
    os.environ.clear()
    os.environ.update(env)
    import django

    django.setup()


def seed(users: int, messages: int) -> float:
    """Seed users, the room and its messages; return the seconds the message load took."""
    from django.db import connection, transaction

    from accounts.models import User
    from messaging.markdown import render
    from rooms import services

    sample = list(message_bodies(200, seed=99))
    mismatched = [body for body in sample if render(body) != render_plain(body)]
    if mismatched:
        raise RuntimeError(f"seed html differs from the renderer for {mismatched[0]!r}")

    # "!" is Django's unusable password: the tool authenticates with tokens it makes itself.
    unusable = "!"
    User.objects.bulk_create(
        [
            User(username=f"{USER_PREFIX}{i}", display_name=f"User {i}", email="", password=unusable)
            for i in range(users)
        ]
    )
    people = list(User.objects.filter(username__startswith=USER_PREFIX).order_by("id"))
    room = services.room_create(creator=people[0], name=ROOM_NAME)
    for person in people[1:]:
        services.room_join(user=person, room=room)
    author_ids = [person.pk for person in people]

    started = time.monotonic()
    base = datetime.now(UTC) - timedelta(seconds=messages + 60)
    with transaction.atomic(), connection.cursor() as cursor:
        # Rebuilding the secondary indexes once after the load is several times
        # faster than maintaining them row by row (the GIN ones above all).
        cursor.execute(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "WHERE i.indrelid = 'messaging_message'::regclass "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)"
        )
        index_definitions = cursor.fetchall()
        for name, _ in index_definitions:
            cursor.execute(f"DROP INDEX {name}")
        raw = cursor.cursor  # the psycopg cursor under Django's wrapper
        columns = "room_id, author_id, body, html, created_at"
        with raw.copy(f"COPY messaging_message ({columns}) FROM STDIN") as copy:
            lines: list[str] = []
            for index, body in enumerate(message_bodies(messages)):
                created = (base + timedelta(seconds=index)).isoformat()
                # Bodies are plain words: no tab, newline or backslash to escape.
                lines.append(
                    f"{room.pk}\t{author_ids[index % len(author_ids)]}\t{body}\t{render_plain(body)}\t{created}\n"
                )
                if len(lines) == COPY_CHUNK:
                    copy.write("".join(lines))
                    lines.clear()
                    progress(f"copied {index + 1:,} of {messages:,} messages ({time.monotonic() - started:.0f} s)")
            if lines:
                copy.write("".join(lines))
        progress(f"copied {messages:,} messages; rebuilding {len(index_definitions)} indexes")
        # Django's foreign keys are deferred; their checks must fire before CREATE INDEX may run.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        progress(f"foreign keys checked ({time.monotonic() - started:.0f} s)")
        cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
        for name, definition in index_definitions:
            cursor.execute(definition)
            progress(f"rebuilt {name} ({time.monotonic() - started:.0f} s)")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) messaging_message")
    progress(f"seeded in {time.monotonic() - started:.0f} s")
    return time.monotonic() - started


def progress(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


# --- Cases -------------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    path: str
    params: dict[str, str | int]
    # Runs the selector in-process (for the plan); returns the number of results.
    selector: Any


def build_cases(room_id: int, user: Any, total: int) -> list[Case]:
    from django.db import connection

    from messaging import selectors
    from rooms.models import Room

    room = Room.objects.get(pk=room_id)

    def id_at_depth(depth: int) -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM messaging_message WHERE room_id = %s ORDER BY id DESC OFFSET %s LIMIT 1",
                [room_id, depth],
            )
            return int(cursor.fetchone()[0])

    history = f"/api/v1/rooms/{room_id}/messages/"
    search = "/api/v1/search/messages/"
    cases = [Case("history newest", history, {}, lambda: selectors.message_history(room=room, limit=PAGE_LIMIT))]
    for label, depth in (("history middle", total // 2), ("history deep", total * 9 // 10)):
        before = id_at_depth(depth)
        cases.append(
            Case(
                f"{label} ({depth:,})",
                history,
                {"before": before},
                lambda before=before: selectors.message_history(room=room, before=before, limit=PAGE_LIMIT),
            )
        )
    for label, query in (("search common", COMMON_WORD), ("search rare", RARE_WORD), ("search phrase", PHRASE)):
        cases.append(
            Case(
                f"{label} ({query})",
                search,
                {"q": query},
                lambda query=query: selectors.message_search(user=user, query=query, limit=PAGE_LIMIT),
            )
        )
    return cases


def explain(case: Case) -> dict[str, Any]:
    """Run the case's selector, then EXPLAIN ANALYZE the page query it issued."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        case.selector()
    page_sql = next(q["sql"] for q in captured.captured_queries if 'FROM "messaging_message"' in q["sql"])
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + page_sql)
        plan = [row[0] for row in cursor.fetchall()]
    indexes = sorted(
        set(
            re.findall(
                r"(?:Index Scan(?: Backward)?|Index Only Scan|Bitmap Index Scan) (?:Backward )?(?:using|on) (\w+)",
                "\n".join(plan),
            )
        )
    )
    execution = next((line for line in plan if line.startswith("Execution Time")), "")
    return {"sql": page_sql, "plan": plan, "indexes": indexes, "execution": execution}


def time_selectors(cases: Sequence[Case], repeats: int) -> dict[str, list[float]]:
    """Time each case's selector in this process (page query and prefetch, no HTTP), cases interleaved."""
    durations: dict[str, list[float]] = {case.name: [] for case in cases}
    for _ in range(repeats):
        for case in cases:
            started = time.perf_counter()
            case.selector()
            durations[case.name].append(time.perf_counter() - started)
    return durations


def match_counts() -> dict[str, int]:
    """Count every full-text match of each search (the whole result set, not one page), for context."""
    from django.db import connection

    counts = {}
    with connection.cursor() as cursor:
        for query in (COMMON_WORD, RARE_WORD, PHRASE):
            cursor.execute(
                "SELECT count(*) FROM messaging_message WHERE "
                "to_tsvector('english'::regconfig, body) @@ websearch_to_tsquery('english'::regconfig, %s)",
                [query],
            )
            counts[query] = int(cursor.fetchone()[0])
    return counts


# --- HTTP --------------------------------------------------------------------------------------


class Http:
    """One keep-alive connection to the server, reopened if the server closes it."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.headers = {"Authorization": f"Bearer {token}", "Host": HOST}
        self.connection = http.client.HTTPConnection(HOST, port, timeout=30)

    def get(self, path: str, params: dict[str, str | int]) -> tuple[int, bytes]:
        url = f"{path}?{urlencode(params)}" if params else path
        for attempt in (1, 2):
            try:
                self.connection.request("GET", url, headers=self.headers)
                response = self.connection.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, ConnectionError):
                self.connection.close()
                self.connection = http.client.HTTPConnection(HOST, self.port, timeout=30)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def measure(
    http_client: Http, cases: Sequence[Case], requests: int, warmup: int, deadline: float
) -> dict[str, list[float]]:
    """Request every case in turn, warm-up first; return each case's durations in seconds."""
    durations: dict[str, list[float]] = {case.name: [] for case in cases}
    for round_number in range(warmup + requests):
        if time.monotonic() > deadline:
            progress(f"stopped at the --timeout after {round_number} rounds")
            break
        for case in cases:
            started = time.perf_counter()
            status, body = http_client.get(case.path, case.params)
            elapsed = time.perf_counter() - started
            if status != 200:
                raise RuntimeError(f"{case.name}: HTTP {status}: {body[:300]!r}")
            if round_number == 0:
                results = json.loads(body)["results"]
                if not results:
                    raise RuntimeError(f"{case.name}: an empty page")
            if round_number >= warmup:
                durations[case.name].append(elapsed)
    return durations


def table(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        f"{'':<40} {'HTTP ms':^37} {'selector ms':^15}",
        f"{'case':<40} {'n':>5} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7} {'p50':>7} {'p99':>7}  index",
    ]
    for row in rows:
        selector = row["selector"]
        lines.append(
            f"{row['case']:<40} {row['requests']:>5} {row['p50_ms']:>7.1f} {row['p95_ms']:>7.1f} "
            f"{row['p99_ms']:>7.1f} {row['max_ms']:>7.1f} {selector['p50_ms']:>7.1f} {selector['p99_ms']:>7.1f}  "
            f"{', '.join(row['indexes']) or 'none'}"
        )
    return "\n".join(lines)


def verdict(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    by_name = {row["case"].split(" (")[0]: row for row in rows}
    newest = by_name["history newest"]["p99_ms"]
    deep = by_name["history deep"]["p99_ms"]
    search_worst = max(row["p99_ms"] for row in rows if row["case"].startswith("search"))
    return {
        "history_newest_p99_ms": newest,
        "history_newest_ok": newest <= TARGETS["history_newest_p99_ms"],
        "deep_over_newest_p99": round(deep / newest, 2) if newest else None,
        "deep_ok": deep <= TARGETS["deep_over_newest"] * newest,
        "deep_over_newest_p50": round(by_name["history deep"]["p50_ms"] / by_name["history newest"]["p50_ms"], 2)
        if by_name["history newest"]["p50_ms"]
        else None,
        "deep_over_newest_selector_p99": round(
            by_name["history deep"]["selector"]["p99_ms"] / by_name["history newest"]["selector"]["p99_ms"], 2
        )
        if by_name["history newest"]["selector"]["p99_ms"]
        else None,
        "search_worst_p99_ms": search_worst,
        "search_ok": search_worst <= TARGETS["search_p99_ms"],
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000, help="messages in the room (default 1,000,000)")
    parser.add_argument("--users", type=int, default=20, help="members of the room, authors in turn")
    parser.add_argument("--requests", type=int, default=200, help="measured requests per case")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured requests per case first")
    parser.add_argument("--db-requests", type=int, default=100, help="in-process selector calls per case")
    parser.add_argument("--db-name", default="chatbench_history", help="the tool's own database")
    parser.add_argument("--reseed", action="store_true", help="drop the database and seed again")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds the measuring may take at most")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.messages < 1000 or args.requests < 1 or args.warmup < 0 or args.db_requests < 1:
        parser.error("--messages must be at least 1000, --requests and --db-requests at least 1, --warmup at least 0")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://")):
        sys.exit(
            "bench/history.py measures PostgreSQL only (COPY seeding, the search index): "
            "set DATABASE_URL=postgres://user@host:port/any-db; the tool uses its own database --db-name."
        )
    # This process (the HTTP client) stays off the server's CPU.
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})

    found = seeded_count(database_url, args.db_name)
    if found is not None and (args.reseed or found != args.messages):
        progress(f"dropping {args.db_name} ({found:,} messages seeded, {args.messages:,} wanted)")
        drop_database(database_url, args.db_name)
        found = None
    workdir = Path(tempfile.mkdtemp(prefix="bench-history-"))
    server = OurServer(args, uuid.uuid4().hex[:12], workdir)
    progress(f"migrating {args.db_name}")
    server.prepare_database()
    setup_django(server.env)

    from django.db import connection
    from rest_framework_simplejwt.tokens import AccessToken

    from accounts.models import User
    from rooms.models import Room

    seed_seconds = None
    if found is None:
        progress(f"seeding {args.messages:,} messages with COPY")
        seed_seconds = round(seed(args.users, args.messages), 1)
    else:
        progress(f"reusing {found:,} seeded messages in {args.db_name}")
    room = Room.objects.get(slug=ROOM_NAME, deleted_at__isnull=True)
    reader = User.objects.get(username=f"{USER_PREFIX}1")
    cases = build_cases(room.pk, reader, args.messages)
    counts = match_counts()
    plans = {case.name: explain(case) for case in cases}
    progress(f"timing the selectors in-process, {args.db_requests} calls each")
    selector_durations = time_selectors(cases, args.db_requests)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_size_pretty(pg_table_size('messaging_message')), "
            "pg_size_pretty(pg_indexes_size('messaging_message')), version()"
        )
        table_size, index_size, pg_version = cursor.fetchone()
        cursor.execute(
            "SELECT indexname, pg_size_pretty(pg_relation_size(indexname::regclass)) FROM pg_indexes "
            "WHERE tablename = 'messaging_message' ORDER BY indexname"
        )
        index_sizes = dict(cursor.fetchall())
    connection.close()

    token = str(AccessToken.for_user(reader))
    load_before = os.getloadavg()
    try:
        server.start()
        progress(f"server on port {server.port}; {len(cases)} cases × ({args.warmup} + {args.requests}) requests")
        client = Http(server.port, token)
        durations = measure(client, cases, args.requests, args.warmup, time.monotonic() + args.timeout)
    finally:
        server.stop()
        server.cleanup()

    rows = []
    for case in cases:
        plan = plans[case.name]
        rows.append(
            {
                "case": case.name,
                "path": case.path,
                "params": case.params,
                "requests": len(durations[case.name]),
                **summarize_ms(durations[case.name]),
                "indexes": plan["indexes"],
                "sql_execution": plan["execution"],
                "selector": summarize_ms(selector_durations[case.name]),
            }
        )
    print(table(rows))
    outcome = verdict(rows)
    print(json.dumps(outcome))
    if args.out:
        result = {
            "command": "bench/history.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "messages": args.messages,
            "page_limit": PAGE_LIMIT,
            "seed_seconds": seed_seconds,
            "machine": {**machine(), "load_average_before": [round(v, 2) for v in load_before]},
            "postgres": pg_version,
            "table_size": table_size,
            "indexes_size": index_size,
            "index_sizes": index_sizes,
            "match_counts": counts,
            "targets": TARGETS,
            "verdict": outcome,
            "rows": rows,
            "plans": {name: {"sql": plan["sql"], "plan": plan["plan"]} for name, plan in plans.items()},
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
