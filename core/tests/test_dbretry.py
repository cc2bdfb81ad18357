"""A lost PostgreSQL connection is retried only when nothing of the work can have been committed twice.

These tests kill their own backend with `pg_terminate_backend` from a second
connection, at chosen points of a unit of work, and check what
`core.dbretry` does: run it again on a fresh connection, or let the
error through.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from django.db import IntegrityError, OperationalError, connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import RequestFactory
from psycopg_pool import ConnectionPool, PoolTimeout
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core import dbretry
from core.errors import api_exception_handler
from realtime.tests.realtime_support import live_database_url

pytestmark = [pytest.mark.services("postgres"), pytest.mark.django_db(transaction=True)]


def own_backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def terminate(pid: int) -> None:
    """Kill backend `pid` from another connection and wait (at most 5 s) until it is gone."""
    with psycopg.connect(live_database_url(), autocommit=True) as killer:
        killer.execute("SELECT pg_terminate_backend(%s)", [pid])
        for _ in range(100):
            if killer.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone() is None:
                return
            time.sleep(0.05)
    raise AssertionError(f"backend {pid} did not go away")


def kill_own_connection() -> None:
    terminate(own_backend_pid())


def user_count(username: str) -> int:
    from accounts.models import User

    return User.objects.filter(username=username).count()


def new_user(username: str) -> None:
    from accounts.models import User

    User.objects.create(username=username, email=f"{username}@example.com")


class Calls:
    """A unit of work that kills its own connection on the first call only."""

    def __init__(self, body: Callable[[bool], Any]) -> None:
        self.body = body
        self.count = 0

    def __call__(self) -> Any:
        self.count += 1
        return self.body(self.count == 1)


# --- call_with_retry (run_db) ------------------------------------------------------------------------


def test_a_read_whose_connection_was_killed_runs_again_on_a_fresh_connection() -> None:
    def read(first: bool) -> int:
        if first:
            kill_own_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 42")
            return int(cursor.fetchone()[0])

    work = Calls(read)

    assert dbretry.call_with_retry(work) == 42
    assert work.count == 2


def test_a_transaction_killed_before_its_commit_runs_again_and_writes_once() -> None:
    username = f"tx{uuid.uuid4().hex[:8]}"

    def write(first: bool) -> None:
        with transaction.atomic():
            new_user(username)
            if first:
                kill_own_connection()
            new_user(username + "x")  # fails on the dead connection: the transaction never committed

    work = Calls(write)
    dbretry.call_with_retry(work)

    assert work.count == 2
    assert user_count(username) == 1


def test_a_commit_cut_off_runs_again_once_the_server_says_the_transaction_was_thrown_away() -> None:
    username = f"cc{uuid.uuid4().hex[:8]}"

    def write(first: bool) -> None:
        with transaction.atomic():
            new_user(username)
            if first:
                kill_own_connection()  # the next thing sent is COMMIT, to a dead connection

    work = Calls(write)
    dbretry.call_with_retry(work)

    assert work.count == 2
    assert user_count(username) == 1


def test_an_autocommit_write_before_the_connection_died_is_not_run_again() -> None:
    username = f"ac{uuid.uuid4().hex[:8]}"

    def write(first: bool) -> None:
        new_user(username)  # autocommit: committed at once
        if first:
            kill_own_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    work = Calls(write)

    with pytest.raises(OperationalError):
        dbretry.call_with_retry(work)
    assert work.count == 1
    dbretry.discard_connection()
    assert user_count(username) == 1


def test_work_marked_idempotent_runs_again_even_after_an_autocommit_write() -> None:
    username = f"id{uuid.uuid4().hex[:8]}"

    def write(first: bool) -> None:
        from accounts.models import User

        User.objects.get_or_create(username=username, defaults={"email": f"{username}@example.com"})
        if first:
            kill_own_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    work = dbretry.idempotent(Calls(write))
    dbretry.call_with_retry(work)

    assert work.count == 2
    assert user_count(username) == 1


def test_errors_other_than_a_lost_connection_are_not_retried() -> None:
    username = f"ie{uuid.uuid4().hex[:8]}"

    def write(_first: bool) -> None:
        new_user(username)
        new_user(username)  # unique username

    work = Calls(write)

    with pytest.raises(IntegrityError):
        dbretry.call_with_retry(work)
    assert work.count == 1


def test_a_connection_lost_on_every_attempt_gives_up_after_the_last() -> None:
    runs: list[int] = []

    def read() -> None:
        runs.append(1)
        kill_own_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    with pytest.raises(OperationalError):
        dbretry.call_with_retry(read)
    assert len(runs) == dbretry.ATTEMPTS
    dbretry.discard_connection()  # as run_db's caller does after a failed call


# --- Classifying errors ---------------------------------------------------------------------------------


def test_a_busy_pool_means_unavailable_but_is_not_a_lost_connection() -> None:
    wrapped = OperationalError("couldn't get a connection")
    wrapped.__cause__ = PoolTimeout("couldn't get a connection after 10.00 sec")

    assert dbretry.is_database_unavailable(wrapped)
    assert not dbretry.is_connection_lost(wrapped)


@pytest.mark.parametrize(
    ("error", "lost"),
    [
        (psycopg.errors.AdminShutdown("terminating connection due to administrator command"), True),
        (psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly"), True),
        (psycopg.errors.CannotConnectNow("the database system is starting up"), True),
        (psycopg.errors.QueryCanceled("canceling statement due to statement timeout"), False),
        (psycopg.errors.DeadlockDetected("deadlock detected"), False),
        (psycopg.errors.UniqueViolation("duplicate key"), False),
    ],
)
def test_only_connection_level_errors_count_as_lost(error: Exception, lost: bool) -> None:
    wrapped = OperationalError(str(error))
    wrapped.__cause__ = error

    assert dbretry.is_connection_lost(wrapped) is lost
    assert dbretry.is_database_unavailable(wrapped) is lost


def test_an_unreachable_database_answers_503_json_with_retry_after() -> None:
    wrapped = OperationalError("couldn't get a connection")
    wrapped.__cause__ = PoolTimeout("couldn't get a connection after 10.00 sec")

    response = api_exception_handler(wrapped, {})

    assert response is not None
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert set(response.data) == {"detail"}


# --- The pool check ------------------------------------------------------------------------------------------


def test_the_pool_check_replaces_idle_connections_killed_while_idle_without_waiting_on_each() -> None:
    name = f"dbretry-{uuid.uuid4().hex[:8]}"
    conninfo = live_database_url()
    # With a plain check the pool sleeps 1 s, then 2 s, ... between dead connections
    # in one checkout: four dead ones would outlast this 3 s timeout.
    pool = ConnectionPool(
        conninfo,
        kwargs={"application_name": name, "autocommit": True},
        min_size=4,
        max_size=4,
        timeout=3,
        check=dbretry.check_pooled_connection,
        open=False,
    )
    pool.open(wait=True, timeout=10)
    try:
        with psycopg.connect(conninfo, autocommit=True) as killer:
            pids = [
                row[0] for row in killer.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", [name])
            ]
        assert len(pids) == 4
        for pid in pids:
            terminate(pid)

        with pool.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            assert conn.info.backend_pid not in pids
        assert pool.get_stats().get("connections_lost", 0) >= 1
    finally:
        pool.close()


def test_the_pool_check_passes_a_live_connection() -> None:
    with psycopg.connect(live_database_url(), autocommit=True) as conn:
        dbretry.check_pooled_connection(conn)
        assert conn.execute("SELECT 1").fetchone() == (1,)


# --- The view middleware ----------------------------------------------------------------------------------


def middleware_call(view: Callable[..., HttpResponse], request: HttpRequest) -> HttpResponse:
    middleware = dbretry.DatabaseRetryMiddleware(lambda _request: HttpResponse(status=599))
    response = middleware.process_view(request, view, (), {})
    assert response is not None, "the middleware did not run the view"
    return response


def test_a_get_view_whose_connection_was_killed_answers_on_the_second_run() -> None:
    runs: list[int] = []

    def view(request: HttpRequest) -> HttpResponse:
        runs.append(1)
        if len(runs) == 1:
            kill_own_connection()
        return JsonResponse({"pid": own_backend_pid()})

    response = middleware_call(view, RequestFactory().get("/api/v1/rooms/"))

    assert response.status_code == 200
    assert len(runs) == 2


class EchoCreate(APIView):
    """A DRF view that writes in a transaction, dying before COMMIT on its first run."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    throttle_classes: list[Any] = []
    runs = 0

    def post(self, request: Request) -> Response:
        type(self).runs += 1
        with transaction.atomic():
            new_user(request.data["username"])
            if type(self).runs == 1:
                kill_own_connection()
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        return Response({"username": request.data["username"]}, status=201)


def test_a_post_killed_before_commit_runs_again_and_reads_the_same_body() -> None:
    EchoCreate.runs = 0
    username = f"po{uuid.uuid4().hex[:8]}"
    request = RequestFactory().post(
        "/api/v1/echo/", data=json.dumps({"username": username}), content_type="application/json"
    )

    response = middleware_call(EchoCreate.as_view(), request)

    assert response.status_code == 201
    assert EchoCreate.runs == 2
    assert user_count(username) == 1


class AutocommitCreate(APIView):
    """A DRF view that writes in autocommit mode, then loses its connection."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    throttle_classes: list[Any] = []
    runs = 0

    def post(self, request: Request) -> Response:
        type(self).runs += 1
        new_user(request.data["username"])
        kill_own_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return Response(status=201)


def test_a_post_that_may_have_committed_is_not_run_again_and_answers_503_json() -> None:
    AutocommitCreate.runs = 0
    username = f"pa{uuid.uuid4().hex[:8]}"
    request = RequestFactory().post(
        "/api/v1/echo/", data=json.dumps({"username": username}), content_type="application/json"
    )

    response = middleware_call(AutocommitCreate.as_view(), request)
    response.render()  # type: ignore[attr-defined]

    assert response.status_code == 503
    assert set(json.loads(response.content)) == {"detail"}
    assert AutocommitCreate.runs == 1
    dbretry.discard_connection()
    assert user_count(username) == 1
