"""The authenticated agent of a request: what the scope check needs, resolved in one query by the agent flow."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True)
class AgentPrincipal:
    """An agent token as read at the start of this request, with its agent, workspace, owner and effective mode."""

    token_id: UUID
    token_hint: str
    token_scopes: frozenset[str]
    token_expires_at: datetime
    parent_id: UUID | None
    agent_id: UUID
    agent_name: str
    workspace_id: UUID
    workspace_name: str
    owner_id: int
    owner_username: str
    mode_name: str
    mode_scopes: frozenset[str]
    # The agent's live just-in-time grant, read in the same statement: an approved access request, not revoked,
    # before its expiry. None and empty without one.
    grant_id: UUID | None = None
    granted_scopes: frozenset[str] = frozenset()

    is_authenticated = True
    is_anonymous = False

    @property
    def allowed_scopes(self) -> frozenset[str]:
        """Token scopes ∩ (the effective mode's scopes ∪ the live grant's), as read at the start of this request.
        A grant never widens a token: a scope the token lacks stays out."""
        return self.token_scopes & (self.mode_scopes | self.granted_scopes)

    def is_elevated(self, scope: str) -> bool:
        """Allowed only because of the live grant, not by the mode (its use is audited as elevated)."""
        return scope in self.allowed_scopes and scope not in self.mode_scopes

    def __str__(self) -> str:
        return f"agent {self.agent_id}"
