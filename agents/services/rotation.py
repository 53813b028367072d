"""Rotation of child tokens, with reuse detection (the refresh-token rotation rule of OAuth 2.1).

A child token (the MCP server's renewal token) is replaced by a successor: same parent, scopes, expiry and
place in the tree, a new secret, and the old token's children moved under it. The old token is revoked and
remembers its successor (`rotated_to`). Only one holder can rotate a token, so a rotated-out token presented
again means two holders (one of them a thief): the whole lineage, every successor and what hangs below it, is
revoked. The parent is left alone: it is the agent's own credential, issued by a user or an ancestor.
"""

from __future__ import annotations

import logging

from django.db import connection, transaction
from django.utils import timezone

from agents.models import AgentToken
from agents.services.tokens import _SUBTREE_SQL, IssuedAgentToken, _create, _lock_token_tree
from audit import actions
from audit.services import audit_record
from core import metrics
from core.exceptions import InvalidInput
from policies.principals import AgentPrincipal

logger = logging.getLogger(__name__)

# Reasons recorded in `agent_token.reuse_detected`.
REUSE_PRESENTED_AGAIN = "rotated_out_token_presented"
REUSE_CONCURRENT_ROTATION = "rotated_concurrently"

# The successors of a token, oldest first: follow `rotated_to` until a token that was not rotated.
_SUCCESSORS_SQL = """
WITH RECURSIVE successors(id, generation) AS (
    SELECT rotated_to_id, 1 FROM agents_agenttoken WHERE id = %s AND rotated_to_id IS NOT NULL
    UNION ALL
    SELECT token.rotated_to_id, successors.generation + 1
    FROM agents_agenttoken token JOIN successors ON token.id = successors.id
    WHERE token.rotated_to_id IS NOT NULL
)
SELECT id FROM successors ORDER BY generation
"""


def agent_token_rotate(*, principal: AgentPrincipal) -> IssuedAgentToken | None:
    """Replace the caller's own child token by a successor that takes over its children.

    None when the token turned out revoked or expired once the tree was locked; when it was rotated meanwhile
    (a concurrent rotation with the same token), that is reuse and the lineage is revoked first. Rotation adds
    no live token, so the live-children cap does not apply."""
    if principal.parent_id is None:
        raise InvalidInput("A token issued by a user is replaced by issuing a new one; only child tokens rotate.")
    with transaction.atomic():
        _lock_token_tree(principal.agent_id)
        # A fresh statement after the lock: sees a rotation or revocation committed while we waited.
        token = AgentToken.objects.filter(pk=principal.token_id).first()
        now = timezone.now()
        if token is None or token.revoked_at is not None or token.expires_at <= now:
            if token is not None and token.rotated_to_id is not None:
                _lineage_revoke(token=token, reason=REUSE_CONCURRENT_ROTATION, workspace_id=principal.workspace_id)
            return None
        issued = _create(
            agent_id=token.agent_id,
            name=token.name,
            scopes=token.scopes,
            expires_at=token.expires_at,
            parent_id=token.parent_id,
            depth=token.depth,
        )
        metrics.token_issued(kind=metrics.TOKEN_ROTATED)
        successor = issued.token
        moved = AgentToken.objects.filter(parent_id=token.id).update(parent_id=successor.id)
        AgentToken.objects.filter(pk=token.id).update(revoked_at=now, rotated_to_id=successor.id)
        audit_record(
            action=actions.AGENT_TOKEN_ROTATED,
            actor_type="agent",
            actor=str(token.agent_id),
            workspace_id=principal.workspace_id,
            agent_id=token.agent_id,
            details={
                "token_id": str(token.id),
                "token_hint": token.hint,
                "new_token_id": str(successor.id),
                "new_token_hint": successor.hint,
                "parent_id": str(token.parent_id),
                "scopes": list(successor.scopes),
                "expires_at": successor.expires_at.isoformat(),
                "children_moved": moved,
            },
        )
    return issued


def agent_token_lineage_revoke(*, token_id, agent_id, workspace_id) -> list[str]:
    """A rotated-out token was presented again: revoke every successor with its subtree, and audit it once.

    Returns the ids revoked; empty when the lineage is already dead (nothing recorded then, so the caller
    records an ordinary rejection)."""
    with transaction.atomic():
        _lock_token_tree(agent_id)
        token = AgentToken.objects.filter(pk=token_id).first()
        if token is None or token.rotated_to_id is None:
            return []
        return _lineage_revoke(token=token, reason=REUSE_PRESENTED_AGAIN, workspace_id=workspace_id)


def _lineage_revoke(*, token: AgentToken, reason: str, workspace_id) -> list[str]:
    """Under the tree lock: revoke the newest successor of `token` with its subtree. Every older successor was
    revoked when it was rotated, and its children moved on, so the newest holds all that is still alive. Two
    statements however long the lineage; audited when anything was still alive."""
    with connection.cursor() as cursor:
        cursor.execute(_SUCCESSORS_SQL, [token.id])
        successor_ids = [row[0] for row in cursor.fetchall()]
        cursor.execute(_SUBTREE_SQL, [successor_ids[-1], timezone.now()])
        revoked_ids = [str(row[0]) for row in cursor.fetchall()]
    if revoked_ids:
        logger.warning("Rotated-out agent token presented again: %s; lineage revoked", token.hint)
        audit_record(
            action=actions.AGENT_TOKEN_REUSE_DETECTED,
            actor_type="agent",
            actor=str(token.agent_id),
            workspace_id=workspace_id,
            agent_id=token.agent_id,
            details={
                "token_id": str(token.id),
                "token_hint": token.hint,
                "successor_ids": [str(successor_id) for successor_id in successor_ids],
                "revoked_ids": revoked_ids,
                "reason": reason,
            },
        )
    return revoked_ids
