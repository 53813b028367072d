"""System check: an agent route without a declared scope, or not guarded by HasAgentScope, stops `runserver`,
`migrate` and `check` (deny by default, enforced before the first request)."""

from __future__ import annotations

from django.core import checks

from agents.registry import route_entries
from policies.permissions import HasAgentScope
from policies.scopes import ALL_SCOPES, ANY_VALID_AGENT_TOKEN


@checks.register(checks.Tags.security, checks.Tags.urls)
def check_agent_routes_declare_scopes(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    errors = []
    for entry in route_entries():
        if not entry.agent_reachable:
            continue
        if entry.required_scope not in (*ALL_SCOPES, ANY_VALID_AGENT_TOKEN):
            errors.append(
                checks.Error(
                    f"Agent route {entry.route!r} ({entry.view_class.__name__}) declares no known required_scope.",
                    hint=f"Set required_scope to one of {', '.join(ALL_SCOPES)} or ANY_VALID_AGENT_TOKEN.",
                    obj=entry.view_class,
                    id="coderauth.E001",
                )
            )
        if HasAgentScope not in getattr(entry.view_class, "permission_classes", ()):
            errors.append(
                checks.Error(
                    f"Agent route {entry.route!r} ({entry.view_class.__name__}) is not guarded by HasAgentScope.",
                    obj=entry.view_class,
                    id="coderauth.E002",
                )
            )
    return errors
