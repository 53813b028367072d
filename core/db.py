"""Database helpers that know no app: a cursor whose statements PostgreSQL plans once per connection, and a first
statement that checks its own connection instead of Django's per-request `SELECT 1`."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections

logger = logging.getLogger(__name__)

# Django turns psycopg's automatic preparation off (prepare_threshold=None, for connection poolers) and its
# client-side-binding cursors never prepare; psycopg then also ignores prepare=True. A threshold no statement
# reaches keeps automatic preparation off and lets the cursor below ask for it explicitly.
_PREPARE_ONLY_WHEN_ASKED = sys.maxsize


class _PreparingCursor(psycopg.Cursor):
    """Server-side binding, every statement prepared: parsed and planned once per connection, psycopg keeps the name.

    Results come in PostgreSQL's binary format: the lookup's UUIDs, timestamps and arrays load from it with less
    work than from text (about 14 µs of its 80 µs of CPU). One per database connection, kept open: a fresh psycopg
    cursor looks up the adapters of every parameter and column again on its first statement, about 40 µs more.
    Closing it is therefore a no-op; it goes with its connection."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True, binary=True)

    def close(self) -> None:
        """Kept for the next request on this connection (Django's cursor wrapper closes it after each use)."""


def prepared_statement_cursor():
    """A Django cursor (health-checked, logged and counted as a query, errors wrapped) that prepares its statements.

    Planning the agent lookup's six-table join costs about 1 ms on these machines, ten times running it: prepared
    once per connection, the lookup takes about 0.1 ms a request (docs/benchmarks.md, "Agent hot path").
    CODERAUTH_PREPARED_AGENT_LOOKUP=false gives a plain cursor, for poolers that cannot keep prepared statements.
    """
    # Looked up once: every attribute read through django.db.connection looks the wrapper up again.
    database = connections[DEFAULT_DB_ALIAS]
    if not settings.CODERAUTH_PREPARED_AGENT_LOOKUP:
        return database.cursor()
    database.close_if_health_check_failed()
    database.ensure_connection()
    database.validate_thread_sharing()
    raw_connection = database.connection
    cursor = getattr(database, "_coderauth_preparing_cursor", None)
    # A new connection (after a close, a failed health check or CONN_MAX_AGE) gets a new cursor.
    if cursor is None or cursor.connection is not raw_connection:
        if raw_connection.prepare_threshold is None:
            raw_connection.prepare_threshold = _PREPARE_ONLY_WHEN_ASKED
        with database.wrap_database_errors:
            cursor = _PreparingCursor(raw_connection)
        database._coderauth_preparing_cursor = cursor
    return database.make_debug_cursor(cursor) if database.queries_logged else database.make_cursor(cursor)


def fetchone_with_reconnect(sql: str, params: Mapping[str, object] | Sequence[object]) -> tuple | None:
    """The first row of `sql` on prepared_statement_cursor(), the statement also serving as the health check of a
    kept connection (CONN_HEALTH_CHECKS). Only for a statement that may safely run twice.

    Django checks a kept connection with a `SELECT 1` before the first statement of each request: one more round
    trip to the database on every agent request. When that check is due here, the statement goes first instead;
    if it fails because the connection is dead (a restart, a failover, a terminated session), it runs once more on
    a new connection, where the check would have led. Any other error is raised as it was. Inside a transaction
    Django's own check runs as usual: a dead connection there takes the transaction's work with it."""
    database = connections[DEFAULT_DB_ALIAS]
    replaces_health_check = (
        database.connection is not None
        and database.health_check_enabled
        and not database.health_check_done
        and not database.in_atomic_block
    )
    if replaces_health_check:
        # Django skips its check once this is set; a successful statement proves the connection for the request.
        database.health_check_done = True
    try:
        return _fetchone(sql, params)
    except (OperationalError, InterfaceError) as error:
        if not replaces_health_check or not _connection_lost(database):
            raise
        logger.info("Kept database connection found dead (%s); retrying on a new one", type(error).__name__)
        database.close()
    return _fetchone(sql, params)


def _fetchone(sql: str, params) -> tuple | None:
    with prepared_statement_cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _connection_lost(database) -> bool:
    """psycopg marks a connection closed when the server or the network ended it, not for a failed statement."""
    return database.connection is None or database.connection.closed
