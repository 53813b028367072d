"""The preparing cursor of the agent lookup: one per database connection, and a fresh one after a reconnect; and
the statement that checks its own connection, retried on a new one only when the kept one is dead."""

from __future__ import annotations

import pytest
from django.db import OperationalError, connection

from core.db import fetchone_with_reconnect, prepared_statement_cursor
from tests.helpers.connections import request_starts, terminate_app_connection


def _select_one() -> tuple:
    with prepared_statement_cursor() as cursor:
        cursor.execute("SELECT 1")
        return cursor.cursor, cursor.fetchone()


@pytest.mark.django_db
def test_the_preparing_cursor_is_kept_for_the_connection():
    """Building a psycopg cursor per request costs its adapter look-ups again; one per connection is kept open."""
    first, row = _select_one()
    second, again = _select_one()
    assert row == again == (1,)
    assert second is first
    assert not first.closed


def test_a_new_connection_gets_a_new_preparing_cursor(transactional_db):
    """After a reconnect (CONN_MAX_AGE, a failed health check, a database restart) the old cursor is never used."""
    first, _ = _select_one()
    connection.close()
    second, row = _select_one()
    assert row == (1,)
    assert second is not first
    assert second.connection is connection.connection


@pytest.mark.django_db
def test_without_prepared_statements_a_plain_cursor_is_used(settings):
    settings.CODERAUTH_PREPARED_AGENT_LOOKUP = False
    cursor, row = _select_one()
    assert row == (1,)
    assert type(cursor).__name__ != "_PreparingCursor"


def test_a_failed_statement_on_a_live_connection_is_not_retried(transactional_db):
    """Only a dead connection is worth a second try: a statement the server refused (here, past its statement
    timeout) raises once, on the same connection. Run again elsewhere, it would have succeeded."""
    _select_one()
    backend_pid = connection.connection.info.backend_pid
    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = '10ms'")
    request_starts()
    try:
        with pytest.raises(OperationalError, match="statement timeout"):
            fetchone_with_reconnect("SELECT pg_sleep(1)", ())
        assert connection.connection.info.backend_pid == backend_pid
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET statement_timeout")


def test_a_connection_already_checked_in_the_request_is_not_retried(transactional_db):
    """The statement stands in for the check only where the check is due: once the request has used its connection,
    a failure later is the request's error, as it is without this helper."""
    request_starts()
    _select_one()
    terminate_app_connection()
    try:
        with pytest.raises(OperationalError):
            fetchone_with_reconnect("SELECT 1", ())
    finally:
        connection.close()  # as Django does at the end of a request that failed this way


def test_a_dead_connection_is_replaced_once_the_check_is_due(transactional_db):
    _select_one()
    ended = terminate_app_connection()
    request_starts()
    try:
        assert fetchone_with_reconnect("SELECT 1", ()) == (1,)
        assert connection.connection.info.backend_pid != ended
    finally:
        connection.close()
