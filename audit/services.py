"""Writing audit events. Callers invoke this inside the transaction of the change it records."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

from django.db import connection, transaction
from django.utils import timezone

from audit import actions, chain
from audit.models import AuditEvent
from core import request_context

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

_LAST_HASH_SQL = (
    "SELECT (SELECT hash FROM audit_auditevent ORDER BY id DESC LIMIT 1), "
    "nextval(pg_get_serial_sequence('audit_auditevent', 'id'))"
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
    """Take the chain's transaction-level lock: appends, archiving and pinned exports queue behind each other.

    The lock is its own statement: in READ COMMITTED each statement takes a fresh snapshot, so the next
    statement sees the row the previous lock holder committed just before releasing the lock.
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
    """Append one event to the hash chain. Must run inside the caller's transaction so both commit or neither does.

    Appends are serialised by a transaction-level advisory lock held until the caller commits, so
    two transactions never chain to the same predecessor. Cost: the lock, one SELECT, one INSERT.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_record must run inside the transaction of the change it records.")
    if action not in actions.ALL:
        raise ValueError(f"Unknown audit action {action!r}: add it to audit/actions.py.")
    context = request_context.current()
    chain_lock()
    with connection.cursor() as cursor:
        cursor.execute(_LAST_HASH_SQL)
        last_hash, next_id = cursor.fetchone()
    # Taken after the lock so that time never goes backwards along the chain within one clock.
    now = timezone.now()
    event = AuditEvent(
        id=next_id,
        time=now,
        action=action,
        actor_type=actor_type,
        actor=neutralise(str(actor))[:150],
        workspace_id=chain.canonical_uuid(workspace_id),
        agent_id=chain.canonical_uuid(agent_id),
        details=_clean(details or {}),
        ip=chain.canonical_ip(context.ip),
        user_agent=neutralise(context.user_agent)[:500],
        request_id=neutralise(context.request_id)[:64],
        prev_hash=last_hash or chain.GENESIS_HASH,
    )
    event.hash = chain.row_hash(event.chain_fields())
    event.save(force_insert=True)
    return event
