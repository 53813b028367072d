"""Removing tokens that died long ago. Logins and the MCP server's 15-minute working tokens leave a steady
stream of dead rows; once a token is past expiry or revoked, its row only serves the admin screens."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import Q

from agents.models import AgentToken, UserToken
from audit import actions
from audit.services import audit_record

TOKEN_MODELS = {"agent_token": AgentToken, "user_token": UserToken}
PURGED_ACTIONS = {"agent_token": actions.AGENT_TOKEN_PURGED, "user_token": actions.USER_TOKEN_PURGED}


def _dead_before(cutoff: datetime) -> Q:
    return Q(revoked_at__lt=cutoff) | Q(expires_at__lt=cutoff)


def dead_tokens_count(*, dead_before: datetime) -> dict[str, int]:
    return {kind: model.objects.filter(_dead_before(dead_before)).count() for kind, model in TOKEN_MODELS.items()}


def dead_tokens_purge_batch(*, kind: str, dead_before: datetime, batch_size: int) -> int:
    """Delete up to batch_size tokens of `kind` that were revoked or expired before `dead_before`, with one
    `<kind>.purged` audit row in the same transaction. Returns how many rows went (0: nothing left).

    A dead agent token's children died no later than it did (revocation takes the subtree; a child never
    outlives its parent), so the cascade to them removes nothing that is still alive."""
    model = TOKEN_MODELS[kind]
    with transaction.atomic():
        ids = list(
            model.objects.filter(_dead_before(dead_before))
            .order_by("expires_at")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return 0
        deleted, _ = model.objects.filter(pk__in=ids).delete()
        audit_record(
            action=PURGED_ACTIONS[kind],
            actor_type="system",
            actor="purge_tokens",
            details={"count": deleted, "dead_before": dead_before.isoformat()},
        )
    return deleted
