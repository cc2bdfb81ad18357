"""Surviving lost PostgreSQL connections: a pool check, and retries that are provably safe.

A connection can die under the app: `pg_terminate_backend`, a server
restart, a crashed backend. Two things make that invisible to clients:

- `check_pooled_connection`, the psycopg pool's `check`, throws away a
  pooled connection that died while idle before it is handed out. It costs
  one `poll()` per checkout; only a connection whose socket has something to
  read (the server's farewell, or EOF) gets a real round trip. The first
  dead one drains the pool: when one idle connection was killed, the rest
  usually were too, and the pool would otherwise sleep 1 s, 2 s, 4 s ...
  between the dead connections it finds in one checkout (that is how a
  plain `check=ConnectionPool.check_connection` made a request wait 10 s).
- `call_with_retry` runs a unit of database work again, on a fresh
  connection, when a statement of it failed because the connection was lost
  and nothing of it can have been committed: no autocommit write ran, and no
  transaction of it reached COMMIT. When COMMIT itself was cut off, it runs
  again only if the server, asked on a new connection, says the transaction
  was aborted (`pg_xact_status`), or if the unit is marked `idempotent`
  (doing it twice leaves what doing it once does). Anything else is left to
  fail. `run_db` (consumers, the pump, WebSocket auth) and
  `DatabaseRetryMiddleware` (every sync view) call it.

What cannot be retried becomes a 503 (`is_database_unavailable`, used by
core.errors).
"""

from __future__ import annotations

import logging
import select
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout, TooManyRequests

logger = logging.getLogger(__name__)

ATTEMPTS = 3
# Pause before the second and third attempt: the first retry goes at once (the
# pool hands out a fresh connection); a second failure suggests a restart.
RETRY_PAUSES = (0.0, 0.2)

# SQLSTATE of a lost connection: class 08 (connection exception) and the
# shutdown codes of 57P (admin_shutdown, crash_shutdown, cannot_connect_now).
_LOST_STATES = ("57P01", "57P02", "57P03")
_READ_ONLY_PREFIXES = ("SELECT", "SHOW", "SET ", "RESET", "EXPLAIN", "DECLARE", "FETCH", "CLOSE")

IDEMPOTENT_ATTRIBUTE = "db_retry_idempotent"


# --- The pool check --------------------------------------------------------------------------


def check_pooled_connection(conn: psycopg.Connection[Any]) -> None:
    """Raise if a pooled connection is dead; drain the pool when one is."""
    try:
        if conn.closed or conn.broken:
            raise psycopg.OperationalError("the connection is closed")
        if _has_unread_input(conn):
            # An idle connection has nothing to read unless the server said
            # goodbye (or sent a notice): ask it.
            ConnectionPool.check_connection(conn)
    except Exception:
        pool = getattr(conn, "_pool", None)  # set by psycopg_pool while the connection is checked out
        if isinstance(pool, ConnectionPool):
            logger.warning("database: a pooled connection was dead; replacing the idle ones")
            pool.drain()
        raise


def _has_unread_input(conn: psycopg.Connection[Any]) -> bool:
    poller = select.poll()
    poller.register(conn.pgconn.socket, select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


# --- Classifying errors -------------------------------------------------------------------------


def _psycopg_error(error: BaseException) -> BaseException | None:
    """The psycopg/pool exception behind `error` (Django wraps them), if any."""
    seen = 0
    current: BaseException | None = error
    while current is not None and seen < 5:
        if isinstance(current, (psycopg.Error, PoolTimeout, TooManyRequests)):
            return current
        current = current.__cause__
        seen += 1
    return None


def is_connection_lost(error: BaseException) -> bool:
    """Whether `error` says the connection itself broke (not the statement, not a busy pool)."""
    cause = _psycopg_error(error)
    if cause is None or isinstance(cause, (PoolTimeout, TooManyRequests)):
        return False
    if not isinstance(cause, (psycopg.OperationalError, psycopg.InterfaceError)):
        return False
    state = getattr(cause, "sqlstate", None)
    # No SQLSTATE: libpq's own failure ("server closed the connection unexpectedly", "the connection is closed").
    return state is None or state.startswith("08") or state in _LOST_STATES


def is_database_unavailable(error: BaseException) -> bool:
    """Whether `error` means the database cannot be reached now: a lost connection or no connection in time."""
    cause = _psycopg_error(error)
    return isinstance(cause, (PoolTimeout, TooManyRequests)) or is_connection_lost(error)


# --- Retrying ---------------------------------------------------------------------------------


def idempotent[F: Callable[..., Any]](function: F) -> F:
    """Mark a unit of work safe to run twice, so a COMMIT cut off mid-way may be retried too."""
    setattr(function, IDEMPOTENT_ATTRIBUTE, True)
    return function


class Attempt:
    """Watches the statements of one attempt (a Django execute wrapper) to tell whether a retry is safe.

    Nothing of an attempt is committed when its connection was lost in a
    statement, if no autocommit write ran before and no transaction of it
    ended. When the loss comes outside a statement (at COMMIT), the
    transaction's id, taken after its first write, tells on a new connection
    whether the server committed it or threw it away.
    """

    def __init__(self, *, idempotent: bool = False) -> None:
        self.idempotent = idempotent  # retried anyway: no transaction id needed
        self.statements = 0
        self.lost: BaseException | None = None  # the lost-connection error a statement raised
        self.may_have_committed = False
        self.in_transaction = False
        self.xid: str | None = None  # of the open transaction, once it has written
        self._hook = self._committed

    def _committed(self) -> None:
        self.may_have_committed = True
        self.xid = None

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        connection = context["connection"]
        read_only = _read_only(sql)
        if connection.in_atomic_block:
            if not self.in_transaction:
                self.in_transaction, self.xid = True, None
            # Learn of every commit: registered first in its transaction, so it runs before hooks that may raise.
            if not any(entry[1] is self._hook for entry in connection.run_on_commit):
                connection.on_commit(self._hook)
        else:
            if self.in_transaction:
                # A transaction of this attempt ended, committed or not: assume committed.
                self.may_have_committed, self.in_transaction, self.xid = True, False, None
            if not read_only:
                # In autocommit a write is committed once the server ran it, whether or not the reply came back.
                self.may_have_committed = True
        self.statements += 1
        try:
            result = execute(sql, params, many, context)
        except Exception as error:
            if self.lost is None and is_connection_lost(error):
                self.lost = error
            raise
        if self.in_transaction and not read_only and self.xid is None and not self.idempotent:
            self._remember_xid(connection)  # about 50 us, once per writing transaction
        return result

    def _remember_xid(self, connection: Any) -> None:
        """Note the open transaction's id (assigned by its first write): one round trip, straight through psycopg."""
        try:
            with connection.wrap_database_errors:
                row = connection.connection.execute("SELECT pg_current_xact_id()::text").fetchone()
        except Exception as error:
            # Lost here, inside the transaction: nothing of it was committed.
            if self.lost is None and is_connection_lost(error):
                self.lost = error
            raise
        self.xid = str(row[0]) if row else _UNKNOWN_XID

    def retry_is_safe(self, *, idempotent: bool, error: BaseException | None) -> bool:
        """Whether the work may run again after this attempt failed with `error`; call after `discard_connection`.

        `error` is the exception that ended the attempt, if the caller saw one.
        """
        if self.lost is not None:
            return idempotent or not self.may_have_committed
        if error is None or not is_connection_lost(error):
            return False
        # Lost outside a statement: at COMMIT, most likely.
        if idempotent or self.statements == 0:
            return True
        if self.may_have_committed:
            return False
        if self.xid is None:
            return True  # the open transaction wrote nothing
        return transaction_aborted(self.xid)


_UNKNOWN_XID = "unknown"


def transaction_aborted(xid: str, within: float = 5.0) -> bool:
    """Whether the server threw transaction `xid` away (asked on a new connection); False when it cannot tell.

    Asked again while the server is starting up (a restart cut the COMMIT) or
    the transaction is still "in progress" (its killed backend is on its way out).
    """
    from django.db import DatabaseError, connection

    if xid == _UNKNOWN_XID:
        return False
    deadline = time.monotonic() + within
    status: str | None = None
    for _ in range(int(within / 0.1) + 1):
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_xact_status(%s::xid8)", [xid])
                row = cursor.fetchone()
            status = row[0] if row else None
        except DatabaseError as error:
            discard_connection()
            if not is_database_unavailable(error):
                break
            status = "unreachable"
        if status not in ("in progress", "unreachable") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    logger.info("database: a COMMIT was cut off; transaction %s is %s", xid, status)
    return status == "aborted"


def _read_only(sql: str) -> bool:
    return sql.lstrip()[:8].upper().startswith(_READ_ONLY_PREFIXES)


def discard_connection(alias: str = "default") -> None:
    """Let go of the thread's (broken) connection: the pool throws it away, the next query gets a fresh one."""
    from django.db import connections

    connection = connections[alias]
    try:
        connection.close()
    except Exception:  # closing a dead connection may complain; it is gone either way
        logger.debug("database: closing a lost connection failed", exc_info=True)
        connection.connection = None


def call_with_retry[R](function: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    """Run `function(*args, **kwargs)`; run it again on a fresh connection when that is safe (see the module)."""
    from django.db import connection

    if connection.in_atomic_block or connection.vendor != "postgresql":
        return function(*args, **kwargs)  # an outer transaction owns the connection; SQLite is never lost
    is_idempotent = bool(getattr(function, IDEMPOTENT_ATTRIBUTE, False))
    for number in range(ATTEMPTS):
        attempt = Attempt(idempotent=is_idempotent)
        try:
            with connection.execute_wrapper(attempt):
                return function(*args, **kwargs)
        except Exception as error:
            if number + 1 == ATTEMPTS or not (attempt.lost or is_connection_lost(error)):
                raise
            discard_connection()
            if not attempt.retry_is_safe(idempotent=is_idempotent, error=error):
                raise
            log_retry(function, attempt.lost or error, number)
        time.sleep(RETRY_PAUSES[min(number, len(RETRY_PAUSES) - 1)])
    raise AssertionError("unreachable")  # pragma: no cover


class DatabaseRetryMiddleware:
    """Run each sync view again when its connection was lost and that is safe (last in MIDDLEWARE).

    The view is called from `process_view`, after every other middleware's,
    so a retry repeats only the view. It is retried when it raised, or
    answered 5xx, after a statement of it failed on a lost connection; GET,
    HEAD and OPTIONS, and views marked `db_retry_idempotent`, count as
    idempotent. The request body is kept in memory so the view can read it
    again; a body too large for that, or a multipart one, gets one attempt.
    """

    SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        return self.get_response(request)

    def process_view(self, request: Any, view_func: Callable[..., Any], view_args: Any, view_kwargs: Any) -> Any:
        from asgiref.sync import iscoroutinefunction
        from django.db import connection

        if (
            iscoroutinefunction(view_func)
            or connection.vendor != "postgresql"
            or connection.in_atomic_block
            or connection.settings_dict.get("ATOMIC_REQUESTS")
            or not _body_rereadable(request)
        ):
            return None  # Django calls the view itself, once
        is_idempotent = request.method in self.SAFE_METHODS or _declared_idempotent(view_func)
        for number in range(ATTEMPTS):
            attempt = Attempt(idempotent=is_idempotent)
            last = number + 1 == ATTEMPTS
            try:
                with connection.execute_wrapper(attempt):
                    response = view_func(request, *view_args, **view_kwargs)
            except Exception as error:
                if last or not (attempt.lost or is_connection_lost(error)):
                    raise
                discard_connection()
                if not attempt.retry_is_safe(idempotent=is_idempotent, error=error):
                    raise
                log_retry(request.path, attempt.lost or error, number)
            else:
                # DRF's exception handler (core.errors) has already made the error a 503, and kept it.
                failure = getattr(response, "database_error", None) or attempt.lost
                if last or failure is None or getattr(response, "status_code", 200) < 500:
                    return response
                discard_connection()
                if not attempt.retry_is_safe(idempotent=is_idempotent, error=failure):
                    return response
                log_retry(request.path, failure, number)
            time.sleep(RETRY_PAUSES[min(number, len(RETRY_PAUSES) - 1)])
        raise AssertionError("unreachable")  # pragma: no cover


def _declared_idempotent(view_func: Callable[..., Any]) -> bool:
    view_class = getattr(view_func, "cls", None) or getattr(view_func, "view_class", None)
    return bool(getattr(view_func, IDEMPOTENT_ATTRIBUTE, False) or getattr(view_class, IDEMPOTENT_ATTRIBUTE, False))


def _body_rereadable(request: Any) -> bool:
    """Read the body into memory (so a second run of the view can parse it), if it is small and not multipart."""
    from django.conf import settings
    from django.http.request import RawPostDataException

    if request.method in DatabaseRetryMiddleware.SAFE_METHODS:
        return True
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if request.content_type == "multipart/form-data" or (limit is not None and length > limit):
        return False
    try:
        request.body  # noqa: B018 (cached on the request from here on)
    except RawPostDataException:
        return False
    return True


def log_retry(what: object, error: BaseException, number: int) -> None:
    name = getattr(what, "__qualname__", None) or str(what)
    logger.warning("database connection lost in %s (attempt %d): %s; retrying", name, number + 1, error)
