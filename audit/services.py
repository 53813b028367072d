"""Writing audit events. Callers invoke this inside the transaction of the change it records."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

from django.db import connection, transaction
from django.utils import timezone

from audit import actions, chain
from audit.models import AuditEvent
from core import metrics, request_context

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

# Before the row's time is stamped and its id drawn: the sealer's rule (audit/sealing.py) finds writers by it.
_WRITER_LOCK_SQL = "LOCK TABLE audit_auditevent IN ROW EXCLUSIVE MODE"


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

    No lock: concurrent writers append side by side, and audit/sealing.py links the committed rows into the hash
    chain, in id order, moments later. Cost: two statements, the table lock every INSERT takes anyway (taken first,
    so that it covers the time stamp) and the INSERT.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_record must run inside the transaction of the change it records.")
    if action not in actions.ALL:
        raise ValueError(f"Unknown audit action {action!r}: add it to audit/actions.py.")
    context = request_context.current()
    metrics.audit_event_recorded(action)  # counted when the transaction commits
    with connection.cursor() as cursor:
        cursor.execute(_WRITER_LOCK_SQL)
    # Stamped under the lock, so a reader that waited out every writer holding it at some instant (audit_chain_now)
    # knows that every row stamped before that instant is committed.
    event = AuditEvent(
        time=timezone.now(),
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
    # The id is drawn inside the INSERT, under the lock: archive_audit's lock on the table waits out every writer
    # that holds an id.
    event.save(force_insert=True)
    return event
