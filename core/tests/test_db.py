"""The preparing cursor of the agent lookup: one per database connection, and a fresh one after a reconnect."""

from __future__ import annotations

import pytest
from django.db import connection

from core.db import prepared_statement_cursor


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
