"""The app's own database connection seen from outside: what it sends PostgreSQL, and ending it the way a server
restart or failover does. Django's query log cannot show either: its health check bypasses the log."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from django.db import close_old_connections, connection
from psycopg import pq

_MESSAGE_START = re.compile(r"\n(?=[FB]\t\d+\t)")


def request_starts() -> None:
    """What Django does at the start of every real request, and the test client leaves out: a kept connection's
    health check (CONN_HEALTH_CHECKS) falls due again."""
    close_old_connections()


@contextmanager
def messages_sent() -> Iterator[list[tuple[str, str]]]:
    """(message type, contents) of every protocol message the app's current connection sends PostgreSQL while
    inside, from libpq's trace: ("Query", '"SELECT 1"') for a simple query, Parse, Bind and Execute for a prepared
    statement. The list is filled in on exit. The connection must stay the same one throughout."""
    connection.ensure_connection()
    libpq_connection = connection.connection.pgconn
    sent: list[tuple[str, str]] = []
    with tempfile.TemporaryFile() as trace:
        libpq_connection.trace(trace.fileno())
        libpq_connection.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            yield sent
        finally:
            libpq_connection.untrace()  # flushes the trace
            trace.seek(0)
            sent.extend(_frontend_messages(trace.read().decode()))


def _frontend_messages(trace: str) -> Iterator[tuple[str, str]]:
    """A message is "F" (sent) or "B" (received), its length, its type and its contents, tab-separated, on one line
    unless its contents (a statement's text) run over several."""
    for message in _MESSAGE_START.split(trace) if trace else ():
        direction, _length, kind, *contents = message.split("\t", 3)
        if direction == "F":
            yield kind, "\t".join(contents).strip()


def statements_run(sent: list[tuple[str, str]]) -> int:
    """How many statements the messages ran: each simple Query and each Execute of a prepared one."""
    return sum(kind in ("Query", "Execute") for kind, _contents in sent)


def terminate_app_connection() -> int:
    """End the app's database session from another one (pg_terminate_backend, as a restart or failover ends it);
    the app's side is left as it was, not knowing yet. Returns the ended session's process id."""
    connection.ensure_connection()
    backend_pid = connection.connection.info.backend_pid
    with separate_session(autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s, 5000)", [backend_pid])
    return backend_pid


@contextmanager
def separate_session(*, autocommit: bool) -> Iterator[psycopg.Connection]:
    """A session of its own on the app's database, outside Django: another client of the same server."""
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=autocommit) as other:
        yield other
