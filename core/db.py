"""Database helpers that know no app: a cursor whose statements PostgreSQL plans once per connection."""

from __future__ import annotations

import sys

import psycopg
from django.conf import settings
from django.db import connection

# Django turns psycopg's automatic preparation off (prepare_threshold=None, for connection poolers) and its
# client-side-binding cursors never prepare; psycopg then also ignores prepare=True. A threshold no statement
# reaches keeps automatic preparation off and lets the cursor below ask for it explicitly.
_PREPARE_ONLY_WHEN_ASKED = sys.maxsize


class _PreparingCursor(psycopg.Cursor):
    """Server-side binding, every statement prepared: parsed and planned once per connection, psycopg keeps the name.

    One per database connection, kept open: a fresh psycopg cursor looks up the adapters of every parameter and
    column again on its first statement, about 40 µs of the agent lookup's 0.1 ms. Closing it is therefore a no-op;
    it goes with its connection."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True, binary=binary)

    def close(self) -> None:
        """Kept for the next request on this connection (Django's cursor wrapper closes it after each use)."""


def prepared_statement_cursor():
    """A Django cursor (health-checked, logged and counted as a query, errors wrapped) that prepares its statements.

    Planning the agent lookup's six-table join costs about 1 ms on these machines, ten times running it: prepared
    once per connection, the lookup takes about 0.1 ms a request (docs/benchmarks.md, "Agent hot path").
    CODERAUTH_PREPARED_AGENT_LOOKUP=false gives a plain cursor, for poolers that cannot keep prepared statements.
    """
    if not settings.CODERAUTH_PREPARED_AGENT_LOOKUP:
        return connection.cursor()
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    raw_connection = connection.connection
    cursor = getattr(connection, "_coderauth_preparing_cursor", None)
    # A new connection (after a close, a failed health check or CONN_MAX_AGE) gets a new cursor.
    if cursor is None or cursor.connection is not raw_connection:
        if raw_connection.prepare_threshold is None:
            raw_connection.prepare_threshold = _PREPARE_ONLY_WHEN_ASKED
        with connection.wrap_database_errors:
            cursor = _PreparingCursor(raw_connection)
        connection._coderauth_preparing_cursor = cursor
    return connection.make_debug_cursor(cursor) if connection.queries_logged else connection.make_cursor(cursor)
