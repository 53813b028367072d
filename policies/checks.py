"""System checks: an agent route without a declared scope stops `runserver`, `migrate` and `check`;
a default permission mode that names no mode stops `migrate` and `check --database default`."""

from __future__ import annotations

from django.conf import settings
from django.core import checks
from django.db import DatabaseError

from policies.permissions import HasAgentScope
from policies.scopes import ALL_SCOPES, ANY_VALID_AGENT_TOKEN


@checks.register(checks.Tags.security, checks.Tags.urls)
def check_agent_routes_declare_scopes(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    from policies.registry import route_entries

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


@checks.register(checks.Tags.database)
def check_default_permission_mode_exists(app_configs=None, databases=None, **kwargs) -> list[checks.CheckMessage]:
    if not databases:
        return []
    from policies.selectors import permission_mode_find

    name = settings.CODERAUTH_DEFAULT_PERMISSION_MODE
    try:
        exists = permission_mode_find(name=name) is not None
    except DatabaseError:  # not migrated yet: the built-ins arrive with the migrations
        return []
    if exists:
        return []
    return [
        checks.Error(
            f"CODERAUTH_DEFAULT_PERMISSION_MODE is {name!r}, which names no permission mode.",
            hint="Use default or no-user-data (or the name of a custom mode you created).",
            id="coderauth.E003",
        )
    ]
