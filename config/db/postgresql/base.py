"""Django's PostgreSQL backend, with a connection health check that costs no round trip while a connection is in
steady use.

Django's CONN_HEALTH_CHECKS sends `SELECT 1` before the first query of every request on a kept connection: one more
round trip on every autosave (docs/benchmarks.md, "Autosave overhead"). What it guards against is a connection the
server has closed (a PostgreSQL restart, pg_terminate_backend, an idle timeout). A server that closes a connection
sends its error and closes the socket, so the socket of an idle connection becomes readable: this backend looks
at the socket first (poll, no round trip) and sends Django's `SELECT 1` only when there is something to read, when
psycopg knows the connection is broken or not idle, or when the connection has not passed a `SELECT 1` for
DATABASE_HEALTH_CHECK_SECONDS (so a connection that died silently, without a word from the server, is checked
as before once it has sat that long). Everything else is Django's own: errors during a request are checked with
`SELECT 1` at the request's end (close_if_unusable_or_obsolete), CONN_MAX_AGE, pools.

The autosave does without even that look (`prepared_cursor(checked=False)`): its first statement is a read, which it
runs again on a new connection when the server turns out to have closed the kept one (`lost`).
"""

from __future__ import annotations

import select
import time

from django.conf import settings
from django.db.backends.postgresql import base, operations
from psycopg import pq

_POLL = getattr(select, "poll", None)  # not on Windows: there every check is Django's SELECT 1


class DatabaseOperations(operations.DatabaseOperations):
    def last_executed_query(self, cursor, sql, params):
        # a prepared_cursor() binds on the server (a prepared run sends no query text): the statement with its
        # parameters, as Django reports it when every cursor binds on the server (query logging, assertNumQueries)
        if isinstance(cursor, base.ServerBindingCursor):
            try:
                return self.compose_sql(sql, params)
            except self.connection.Database.DataError:
                return None
        return super().last_executed_query(cursor, sql, params)


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
    health_checked_at = 0.0  # time.monotonic() of the last connect or SELECT 1 that succeeded

    _poller = None  # a poll object with this connection's socket registered, made on the first check

    def connect(self):
        super().connect()
        self.health_checked_at = time.monotonic()
        self._poller = None  # a new socket

    def close_if_health_check_failed(self):
        if self.connection is None or not self.health_check_enabled or self.health_check_done or self.pool:
            return super().close_if_health_check_failed()
        if self._quiet_and_recently_checked():
            self.health_check_done = True
            return None
        super().close_if_health_check_failed()  # SELECT 1; closes the connection if that fails
        if self.connection is not None:
            self.health_checked_at = time.monotonic()
        return None

    def prepared_cursor(self, *, checked: bool = True):
        """Like cursor() (Django's wrapper: execute wrappers, query logging, database errors mapped), but the
        statements are bound on the server, so that psycopg prepares one once it has run `prepare_threshold` times
        on this connection (OPTIONS, set by config.env): PostgreSQL then parses and plans it once per connection,
        not on every run. For statements written once and run very often (the autosave's read and its locking upsert);
        Django's own cursors bind on the client and are never prepared.

        `checked=False` skips the health check: for a caller whose first statement is a read that it runs again on
        a new connection when the server turns out to have closed this one (`lost`), so that the check is paid only
        when a connection has died instead of on every request (crowd.services.assignments.answer_save_with_token)."""
        if checked:
            self.close_if_health_check_failed()
        self.ensure_connection()
        with self.wrap_database_errors:
            cursor = base.ServerBindingCursor(self.connection)
        return self._prepare_cursor(cursor)

    def lost(self) -> bool:
        """Whether the connection is gone: closed by the server (a restart, pg_terminate_backend, an idle timeout)
        or broken by a failed round trip."""
        conn = self.connection
        return conn is None or conn.closed or conn.broken

    def _quiet_and_recently_checked(self) -> bool:
        """True when the connection passed a SELECT 1 less than DATABASE_HEALTH_CHECK_SECONDS ago, psycopg holds it
        open and idle, and the server has sent nothing on it since (a closing server sends an error, then EOF)."""
        if _POLL is None or time.monotonic() - self.health_checked_at >= settings.DATABASE_HEALTH_CHECK_SECONDS:
            return False
        conn = self.connection
        try:
            if self.lost() or conn.pgconn.transaction_status != pq.TransactionStatus.IDLE:
                return False
            poller = self._poller
            if poller is None:
                poller = self._poller = _POLL()
                poller.register(conn.fileno(), select.POLLIN | select.POLLPRI)
            return not poller.poll(0)
        except (OSError, ValueError, self.Database.Error):
            return False
