"""Audit-log events for tests: written on the chain (at a chosen time if need be), read back, or tampered with."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.sealing import audit_seal
from audit.services import audit_record

GUARDS = ("audit_auditevent_no_update", "audit_auditevent_no_delete", "audit_auditevent_no_truncate")

EVENT_FIELDS = [
    "id",
    "time",
    "action",
    "actor_type",
    "actor",
    "workspace_id",
    "agent_id",
    "details",
    "ip",
    "user_agent",
    "request_id",
    "prev_hash",
    "hash",
]
T0 = datetime(2026, 11, 1, tzinfo=UTC)


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


def sealed(event: AuditEvent) -> AuditEvent:
    """Seal what the test wrote (the seal_audit worker's job in a running installation) and reload `event`."""
    audit_seal(wait_seconds=0)
    event.refresh_from_db(fields=["prev_hash", "hash"])
    return event


def record_events(count: int, *, action: str = "permission_mode.updated", **fields) -> list:
    """`count` events on the chain, sealed."""
    events = []
    for number in range(count):
        with transaction.atomic():
            event = audit_record(action=action, actor_type="system", actor="tests", details={"n": number}, **fields)
            events.append(event)
    return [sealed(event) for event in events]


def make_event(action: str = "permission_mode.updated", *, at: datetime | None = None, **fields) -> AuditEvent:
    """One event on the chain, sealed, optionally at a chosen time."""
    fields.setdefault("actor_type", "system")
    fields.setdefault("actor", "tests")
    with transaction.atomic():
        event = audit_record(action=action, **fields)
    if at is not None:
        # The database stamps every row; a fixture in the past is restamped before its seal, as only the
        # database's owner could.
        tamper("UPDATE audit_auditevent SET time = %s WHERE id = %s", [at, event.id])
        event.time = at
    return sealed(event)


def user_data_read(agent, *, days_ago: float, route: str = "gitsshkey"):
    return make_event(
        "agent.user_data_accessed",
        actor_type="agent",
        actor=str(agent.id),
        workspace_id=agent.workspace_id,
        agent_id=agent.id,
        details={"route": route},
        at=timezone.now() - timedelta(days=days_ago),
    )


def ids(response) -> list[int]:
    """The event ids of one page of GET /api/v2/audit."""
    return [row["id"] for row in response.json()["results"]]
