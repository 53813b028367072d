"""The one DRF permission that guards agent routes: token scopes ∩ (effective mode ∪ live grant), now."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from rest_framework import exceptions, permissions

from core.http.metrics import agent_request_allowed, agent_request_denied, agent_request_rejected
from policies.principals import AgentPrincipal
from policies.scopes import ALL_SCOPES, ANY_VALID_AGENT_TOKEN
from policies.services import agent_access_denied_record


class AgentScopeDenied(exceptions.PermissionDenied):
    """403 whose body names the missing scope and the mode in force, and which side refused:
    `denied_by` is "permission_mode" when the mode (with any live grant) lacks the scope, whatever the token
    holds, else "token": a token without the scope is not helped by asking for a grant, only by a new token."""

    def __init__(self, *, required_scope: str, permission_mode: str, denied_by: str):
        super().__init__()
        if denied_by == "permission_mode":
            message = f"The agent's permission mode '{permission_mode}' does not allow '{required_scope}'."
        else:
            message = f"This agent token does not carry '{required_scope}'; issue one that does."
        self.detail = {
            "detail": message,
            "required_scope": required_scope,
            "permission_mode": permission_mode,
            "denied_by": denied_by,
        }


def declared_scope(view) -> str:
    """The scope a view declares. A view that forgets fails loudly instead of passing silently."""
    scope = getattr(view, "required_scope", None)
    if scope not in (*ALL_SCOPES, ANY_VALID_AGENT_TOKEN):
        raise ImproperlyConfigured(
            f"{type(view).__name__} must declare required_scope as one of {ALL_SCOPES} or ANY_VALID_AGENT_TOKEN."
        )
    return scope


class HasAgentScope(permissions.BasePermission):
    """Allows the request when the agent token's scopes ∩ (its effective mode's ∪ its live grant's) hold the
    view's scope."""

    def has_permission(self, request, view) -> bool:
        scope = declared_scope(view)
        principal = request.auth
        if not isinstance(principal, AgentPrincipal):
            # Deny by default: only the agent flow produces an AgentPrincipal.
            agent_request_rejected(request)
            raise exceptions.NotAuthenticated()
        if scope == ANY_VALID_AGENT_TOKEN or scope in principal.allowed_scopes:
            agent_request_allowed(request)
            return True
        denied_by = "permission_mode" if scope not in principal.mode_scopes | principal.granted_scopes else "token"
        agent_access_denied_record(
            principal=principal, route=request.path, method=request.method, scope=scope, denied_by=denied_by
        )
        agent_request_denied(request)
        raise AgentScopeDenied(required_scope=scope, permission_mode=principal.mode_name, denied_by=denied_by)
