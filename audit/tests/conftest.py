"""Fixtures for the audit log's integrity tests: events on the chain and the guard lifted for tampering."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from django.db import connection, transaction

from audit.services import audit_record

GUARDS = ("audit_auditevent_no_update", "audit_auditevent_no_delete", "audit_auditevent_no_truncate")


@contextmanager
def guards_lifted():
    """Play the attacker who owns the database: lift the triggers to rewrite history directly."""
    with connection.cursor() as cursor:
        for guard in GUARDS:
            cursor.execute(f"ALTER TABLE audit_auditevent DISABLE TRIGGER {guard}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            for guard in GUARDS:
                cursor.execute(f"ALTER TABLE audit_auditevent ENABLE TRIGGER {guard}")


def tamper(sql: str, params=None) -> None:
    with guards_lifted(), connection.cursor() as cursor:
        cursor.execute(sql, params or [])


def record_events(count: int, *, action: str = "permission_mode.updated", **fields) -> list:
    events = []
    for number in range(count):
        with transaction.atomic():
            event = audit_record(action=action, actor_type="system", actor="tests", details={"n": number}, **fields)
            events.append(event)
    return events


@pytest.fixture
def chain_of_five(db) -> list:
    return record_events(5)
