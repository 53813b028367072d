"""Writing audit events. Callers invoke this inside the transaction of the change it records."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import connection, transaction
from psycopg.types.json import Jsonb

from audit import actions, chain
from audit.models import AuditEvent
from core import metrics, request_context

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

# One statement. PostgreSQL takes the INSERT's ROW EXCLUSIVE lock on the table as it parses the statement, then
# stamps the row with its own clock and draws the id from the sequence as it runs: both under the lock. That order
# is what the sealer (audit/sealing.py) and the export pin (audit_chain_now) rely on: a writer they do not find
# holding the lock will stamp a later time and draw a later id. Unsealed: prev_hash and hash stay empty until
# audit/sealing.py links the row.
_INSERT_SQL = (
    "INSERT INTO audit_auditevent (time, action, actor_type, actor, workspace_id, agent_id, details, ip, user_agent,"
    " request_id, prev_hash, hash)"
    " VALUES (clock_timestamp(), %s, %s, %s, %s, %s, %s, %s, %s, %s, '', '') RETURNING id, time"
)


def neutralise(text: str) -> str:
    """Free text (reasons, user agents) must not forge extra lines in downstream log tools."""
    return _CONTROL_CHARACTERS.sub(" ", text)


def _clean(value: Any) -> Any:
    """JSON-native values that survive a jsonb round trip unchanged, so the stored row re-hashes."""
    if isinstance(value, str):
        return neutralise(value)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, dict):
        return {neutralise(str(key)): _clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_clean(item) for item in value]
    if isinstance(value, UUID):
        return str(value)
    # Floats, datetimes and the rest as text: jsonb may print a float differently than Python.
    return neutralise(str(value))


def chain_lock() -> None:
    """Take the chain's transaction-level lock, held by whoever links rows into the chain until it commits.

    Sealers (audit/sealing.py) and archive_audit take it; writers never do. The lock is its own statement: in
    READ COMMITTED each statement takes a fresh snapshot, so the next one sees what the previous holder committed.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("The audit chain lock is held until commit: take it inside a transaction.")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [chain.CHAIN_LOCK_KEY])


def audit_record(
    *,
    action: str,
    actor_type: str,
    actor: str = "",
    workspace_id: UUID | str | None = None,
    agent_id: UUID | str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event, unsealed. Must run inside the caller's transaction so both commit or neither does.

    No lock beyond the one every INSERT takes: concurrent writers append side by side, and audit/sealing.py links
    the committed rows into the hash chain, in id order, moments later. One statement (_INSERT_SQL). The database
    stamps the row; no caller chooses its time.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_record must run inside the transaction of the change it records.")
    if action not in actions.ALL:
        raise ValueError(f"Unknown audit action {action!r}: add it to audit/actions.py.")
    context = request_context.current()
    metrics.audit_event_recorded(action)  # counted when the transaction commits
    event = AuditEvent(
        action=action,
        actor_type=actor_type,
        actor=neutralise(str(actor))[:150],
        workspace_id=chain.canonical_uuid(workspace_id),
        agent_id=chain.canonical_uuid(agent_id),
        details=_clean(details or {}),
        ip=chain.canonical_ip(context.ip),
        user_agent=neutralise(context.user_agent)[:500],
        request_id=neutralise(context.request_id)[:64],
    )
    # Plain SQL, not Model.save(): no ORM insert compilation on every audited write, the same row.
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT_SQL,
            [
                event.action,
                event.actor_type,
                event.actor,
                event.workspace_id,
                event.agent_id,
                Jsonb(event.details),
                event.ip,
                event.user_agent,
                event.request_id,
            ],
        )
        event.id, event.time = cursor.fetchone()
    event._state.adding = False
    event._state.db = connection.alias
    return event


def audit_clock() -> datetime:
    """The audit log's clock: the database server's, which stamps every row. One clock for every app node, so a
    time read here orders against every row's time whatever the nodes' own clocks say."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]
