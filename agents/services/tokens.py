"""Agent tokens: issue by a user, mint a child by an agent, revoke a whole subtree."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from agents.models import AgentToken, WorkspaceAgent, live_token_q
from agents.services import locks
from audit import actions
from audit.services import audit_record
from core import metrics, tokens
from core.exceptions import Conflict, InvalidInput, ObjectNotFound
from policies import rules
from policies.principals import AgentPrincipal
from policies.scopes import ordered

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IssuedAgentToken:
    token: AgentToken
    plaintext: str  # shown once in the response, never stored


def _create(
    *, agent_id, name: str, scopes, expires_at, parent_id=None, depth: int = 0, created_by=None
) -> IssuedAgentToken:
    secret = tokens.generate("agent")
    token = AgentToken.objects.create(
        agent_id=agent_id,
        name=name,
        digest=secret.digest,
        hint=secret.hint,
        scopes=ordered(scopes),
        created_at=timezone.now(),
        expires_at=expires_at,
        parent_id=parent_id,
        depth=depth,
        created_by=created_by,
    )
    return IssuedAgentToken(token=token, plaintext=secret.plaintext)


def _token_details(token: AgentToken) -> dict:
    return {
        "token_id": str(token.id),
        "token_hint": token.hint,
        "name": token.name,
        "scopes": list(token.scopes),
        "expires_at": token.expires_at.isoformat(),
        "parent_id": str(token.parent_id) if token.parent_id else None,
    }


def agent_token_issue(
    *,
    actor,
    agent: WorkspaceAgent,
    name: str = "",
    scopes: list[str] | None = None,
    lifetime_seconds: int | None = None,
) -> IssuedAgentToken:
    """A root token for an agent; scopes default to, and must stay within, the agent's effective mode."""
    rules.require_workspace_writer(actor, owner_id=agent.workspace.owner_id)
    lifetime = tokens.lifetime(
        seconds=lifetime_seconds,
        default=settings.CODERAUTH_AGENT_TOKEN_LIFETIME,
        maximum=settings.CODERAUTH_AGENT_TOKEN_MAX_LIFETIME,
    )
    with transaction.atomic():
        # The effective mode as locked (agents/services/locks.py): a mode change committed meanwhile is seen,
        # and none lands before this token does, so the audit log never shows a token wider than its mode.
        agent, _ = locks.agent_with_modes_lock(agent.pk, agent_share=True)
        mode = agent.effective_permission_mode
        allowed = mode.scope_set()
        requested = set(allowed if scopes is None else scopes)
        if not requested:
            raise InvalidInput("A token needs at least one scope.", field="scopes")
        outside = requested - allowed
        if outside:
            raise InvalidInput(
                f"Scopes outside the agent's mode '{mode.name}': {', '.join(ordered(outside))}.", field="scopes"
            )
        issued = _create(
            agent_id=agent.id, name=name, scopes=requested, expires_at=timezone.now() + lifetime, created_by=actor
        )
        metrics.token_issued(kind=metrics.TOKEN_AGENT)
        audit_record(
            action=actions.AGENT_TOKEN_ISSUED,
            actor_type="user",
            actor=actor.username,
            workspace_id=agent.workspace_id,
            agent_id=agent.id,
            details=_token_details(issued.token),
        )
    return issued


def agent_child_token_issue(
    *, principal: AgentPrincipal, scopes: list[str] | None = None, lifetime_seconds: int | None = None, name: str = ""
) -> IssuedAgentToken:
    """A narrower, shorter-lived token minted by an agent with its own token (the MCP server's).

    Capped per agent: live children (CODERAUTH_AGENT_MAX_LIVE_CHILD_TOKENS) and chain depth
    (CODERAUTH_AGENT_TOKEN_MAX_DEPTH); beyond either, Conflict."""
    lifetime = (
        settings.CODERAUTH_CHILD_TOKEN_LIFETIME if lifetime_seconds is None else timedelta(seconds=lifetime_seconds)
    )
    with transaction.atomic():
        # The tree lock (the agent's row), with the workspace and modes that decide what the parent is allowed
        # now, all locked in order and read fresh (agents/services/locks.py): the child stays within the mode
        # as it is when the child commits, not as it was when the request was authenticated.
        agent, _ = locks.agent_with_modes_lock(principal.agent_id, agent_share=False)
        allowed = principal.token_scopes & agent.effective_permission_mode.scope_set()
        requested = set(allowed if scopes is None else scopes)
        if not requested:
            raise InvalidInput("This token is allowed no scopes now, so it cannot mint a child.", field="scopes")
        outside = requested - allowed
        if outside:
            raise InvalidInput(
                f"A child token may only hold scopes its parent is allowed now; not: {', '.join(ordered(outside))}.",
                field="scopes",
            )
        # A fresh statement after the lock: sees a revocation committed while we waited.
        with connection.cursor() as cursor:
            cursor.execute("SELECT revoked_at, depth FROM agents_agenttoken WHERE id = %s", [principal.token_id])
            row = cursor.fetchone()
        if row is None or row[0] is not None:
            raise InvalidInput("The parent token was revoked.")
        depth = row[1] + 1
        _require_child_caps(principal=principal, depth=depth)
        # Never outlive the parent: a longer request is clamped, not refused.
        expires_at = min(timezone.now() + lifetime, principal.token_expires_at)
        issued = _create(
            agent_id=principal.agent_id,
            name=name or "child",
            scopes=requested,
            expires_at=expires_at,
            parent_id=principal.token_id,
            depth=depth,
        )
        metrics.token_issued(kind=metrics.TOKEN_CHILD)
        audit_record(
            action=actions.AGENT_TOKEN_ISSUED,
            actor_type="agent",
            actor=str(principal.agent_id),
            workspace_id=principal.workspace_id,
            agent_id=principal.agent_id,
            details=_token_details(issued.token),
        )
    return issued


def _require_child_caps(*, principal: AgentPrincipal, depth: int) -> None:
    """Under the tree lock, so parallel mints cannot slip past: a chain no deeper than the setting allows, and no
    more live children per agent than the setting allows. A refusal changes nothing and writes no audit row (the
    409 is the answer); the log keeps it."""
    max_depth = settings.CODERAUTH_AGENT_TOKEN_MAX_DEPTH
    if depth > max_depth:
        logger.warning(
            "Child token refused: agent %s, a child of token %s would be at depth %d (cap %d)",
            principal.agent_id,
            principal.token_id,
            depth,
            max_depth,
        )
        raise Conflict(
            f"A child of this token would be at depth {depth}; a chain of child tokens may go at most "
            f"{max_depth} deep (CODERAUTH_AGENT_TOKEN_MAX_DEPTH = {max_depth}).",
            extra={"limit": max_depth, "code": "token_depth"},
        )
    max_live = settings.CODERAUTH_AGENT_MAX_LIVE_CHILD_TOKENS
    # Counted on the partial index agent_token_live_children (parent set, not revoked), expiry in the range.
    live = AgentToken.objects.filter(
        live_token_q(timezone.now()), agent_id=principal.agent_id, parent__isnull=False
    ).count()
    if live >= max_live:
        logger.warning(
            "Child token refused: agent %s already holds %d live child tokens (cap %d)",
            principal.agent_id,
            live,
            max_live,
        )
        raise Conflict(
            f"This agent already holds {live} live child tokens, the most it may hold at once "
            f"(CODERAUTH_AGENT_MAX_LIVE_CHILD_TOKENS = {max_live}); revoke some or let them expire first.",
            extra={"limit": max_live, "code": "live_child_tokens"},
        )


def _lock_token_tree(agent_id) -> None:
    """Serialise changes to one agent's token tree (minting a child, revoking a subtree).

    Every token of a tree belongs to one agent, so one lock per agent is enough. Without it a revoke
    computed its subtree from a snapshot taken before a concurrent child committed, and that child
    outlived its revoked parent. NO KEY UPDATE does not block the agent's other writes (statuses, logs).
    """
    locks.agent_lock(agent_id)


_SUBTREE_SQL = """
WITH RECURSIVE subtree(id) AS (
    SELECT id FROM agents_agenttoken WHERE id = %s
    UNION ALL
    SELECT child.id FROM agents_agenttoken child JOIN subtree ON child.parent_id = subtree.id
)
UPDATE agents_agenttoken SET revoked_at = %s
WHERE id IN (SELECT id FROM subtree) AND revoked_at IS NULL
RETURNING id
"""


def agent_token_revoke(*, actor, token: AgentToken) -> list[str]:
    """Revoke a token and its whole subtree of children (as Vault's token tree). Idempotent."""
    agent = WorkspaceAgent.objects.select_related("workspace").get(pk=token.agent_id)
    rules.require_workspace_writer(actor, owner_id=agent.workspace.owner_id)
    with transaction.atomic():
        _lock_token_tree(agent.id)
        with connection.cursor() as cursor:
            cursor.execute(_SUBTREE_SQL, [token.id, timezone.now()])
            revoked_ids = [str(row[0]) for row in cursor.fetchall()]
        if revoked_ids:
            audit_record(
                action=actions.AGENT_TOKEN_REVOKED,
                actor_type="user",
                actor=actor.username,
                workspace_id=agent.workspace_id,
                agent_id=agent.id,
                details={"token_id": str(token.id), "token_hint": token.hint, "revoked_ids": revoked_ids},
            )
    return revoked_ids


def agent_token_revoke_by_system(*, token: AgentToken, command: str, reason: str) -> list[str]:
    """Revoke a token and its subtree for a management command (audited with actor type `system`). Idempotent."""
    agent = WorkspaceAgent.objects.get(pk=token.agent_id)
    with transaction.atomic():
        _lock_token_tree(agent.id)
        with connection.cursor() as cursor:
            cursor.execute(_SUBTREE_SQL, [token.id, timezone.now()])
            revoked_ids = [str(row[0]) for row in cursor.fetchall()]
        if revoked_ids:
            audit_record(
                action=actions.AGENT_TOKEN_REVOKED,
                actor_type="system",
                actor=command,
                workspace_id=agent.workspace_id,
                agent_id=agent.id,
                details={
                    "token_id": str(token.id),
                    "token_hint": token.hint,
                    "revoked_ids": revoked_ids,
                    "reason": reason,
                },
            )
    return revoked_ids


# The token to revoke, walked up to its root; the caller may revoke it only if the caller's
# own token is on that path (itself or an ancestor), and only within its own agent.
_ANCESTORS_SQL = """
WITH RECURSIVE ancestors(id, parent_id) AS (
    SELECT id, parent_id FROM agents_agenttoken WHERE id = %s AND agent_id = %s
    UNION ALL
    SELECT parent.id, parent.parent_id FROM agents_agenttoken parent JOIN ancestors ON parent.id = ancestors.parent_id
)
SELECT 1 FROM ancestors WHERE id = %s
"""


def agent_token_revoke_by_agent(*, principal: AgentPrincipal, token_id) -> list[str]:
    """An agent revokes its own token or a descendant of it (the MCP server's child on exit). Idempotent.

    Any other token, even of the same agent, is a 404 so an agent cannot probe for or revoke its siblings.
    """
    with transaction.atomic():
        _lock_token_tree(principal.agent_id)
        with connection.cursor() as cursor:
            cursor.execute(_ANCESTORS_SQL, [token_id, principal.agent_id, principal.token_id])
            if cursor.fetchone() is None:
                raise ObjectNotFound("No such token.")
            token = AgentToken.objects.get(pk=token_id)
            cursor.execute(_SUBTREE_SQL, [token.id, timezone.now()])
            revoked_ids = [str(row[0]) for row in cursor.fetchall()]
        if revoked_ids:
            audit_record(
                action=actions.AGENT_TOKEN_REVOKED,
                actor_type="agent",
                actor=str(principal.agent_id),
                workspace_id=principal.workspace_id,
                agent_id=principal.agent_id,
                details={"token_id": str(token.id), "token_hint": token.hint, "revoked_ids": revoked_ids},
            )
    return revoked_ids
