"""Writing audit events. Callers invoke this inside the transaction of the change it records."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from coderauth import request_context

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def neutralise(text: str) -> str:
    """Free text (reasons, user agents) must not forge extra lines in downstream log tools."""
    return _CONTROL_CHARACTERS.sub(" ", text)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return neutralise(value)
    if isinstance(value, dict):
        return {str(key): _clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(item) for item in value]
    if isinstance(value, UUID):
        return str(value)
    return value


def audit_record(
    *,
    action: str,
    actor_type: str,
    actor: str = "",
    workspace_id: UUID | str | None = None,
    agent_id: UUID | str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event. Must run inside the caller's transaction so both commit or neither does."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_record must run inside the transaction of the change it records.")
    context = request_context.current()
    return AuditEvent.objects.create(
        time=timezone.now(),
        action=action,
        actor_type=actor_type,
        actor=neutralise(str(actor))[:150],
        workspace_id=workspace_id,
        agent_id=agent_id,
        details=_clean(details or {}),
        ip=context.ip,
        user_agent=neutralise(context.user_agent),
        request_id=context.request_id,
    )
