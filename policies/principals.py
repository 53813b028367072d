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

    is_authenticated = True
    is_anonymous = False

    @property
    def allowed_scopes(self) -> frozenset[str]:
        """Token scopes ∩ the effective mode's scopes, as read at the start of this request."""
        return self.token_scopes & self.mode_scopes

    def __str__(self) -> str:
        return f"agent {self.agent_id}"
