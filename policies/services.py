"""Writes of permission modes, and the audit of denied agent requests."""

from __future__ import annotations

from django.db import transaction

from audit import actions
from audit.services import audit_record
from core.exceptions import InvalidInput, NotPermitted
from policies import rules
from policies.models import PermissionMode
from policies.scopes import ALL_SCOPES, BUILTIN_MODES, MODE_ALIASES, ordered


def agent_access_denied_record(*, principal, route: str, method: str, scope: str, denied_by: str) -> None:
    """Every 403 on an agent route is evidence worth keeping (docs/audit.md), with the token's scopes so an
    auditor can tell a mode refusal from a narrow token's."""
    with transaction.atomic():
        audit_record(
            action=actions.AGENT_ACCESS_DENIED,
            actor_type="agent",
            actor=str(principal.agent_id),
            workspace_id=principal.workspace_id,
            agent_id=principal.agent_id,
            details={
                "route": route,
                "method": method,
                "scope": scope,
                "mode": principal.mode_name,
                "denied_by": denied_by,
                "token_id": str(principal.token_id),
                "token_scopes": sorted(principal.token_scopes),
            },
        )


ADMINS_ONLY = "Only admins may change permission modes."


def _validated_scopes(scopes) -> list[str]:
    unknown = sorted(set(scopes) - set(ALL_SCOPES))
    if unknown:
        raise InvalidInput(f"Unknown scopes: {', '.join(unknown)}.", field="scopes")
    return ordered(scopes)


def permission_mode_create(*, actor, name: str, description: str, scopes: list[str]) -> PermissionMode:
    rules.require_admin(actor, ADMINS_ONLY)
    if name in BUILTIN_MODES or name in MODE_ALIASES:
        raise InvalidInput(f"'{name}' is reserved for a built-in mode.", field="name")
    scopes = _validated_scopes(scopes)
    with transaction.atomic():
        if PermissionMode.objects.select_for_update().filter(name=name).exists():
            raise InvalidInput(f"A permission mode named '{name}' already exists.", field="name")
        mode = PermissionMode.objects.create(name=name, description=description, scopes=scopes)
        audit_record(
            action=actions.PERMISSION_MODE_CREATED,
            actor_type="user",
            actor=actor.username,
            details={"mode": name, "scopes": scopes, "description": description},
        )
    return mode


def permission_mode_update(
    *, actor, mode: PermissionMode, description: str | None = None, scopes: list[str] | None = None
) -> PermissionMode:
    rules.require_admin(actor, ADMINS_ONLY)
    if mode.builtin:
        raise NotPermitted(f"Built-in mode '{mode.name}' cannot be changed.")
    with transaction.atomic():
        mode = PermissionMode.objects.select_for_update().get(pk=mode.pk)
        before = {"description": mode.description, "scopes": list(mode.scopes)}
        if description is not None:
            mode.description = description
        if scopes is not None:
            mode.scopes = _validated_scopes(scopes)
        mode.save(update_fields=["description", "scopes", "updated_at"])
        audit_record(
            action=actions.PERMISSION_MODE_UPDATED,
            actor_type="user",
            actor=actor.username,
            details={"mode": mode.name, "from": before, "to": {"description": mode.description, "scopes": mode.scopes}},
        )
    return mode


def permission_mode_delete(*, actor, mode: PermissionMode) -> None:
    rules.require_admin(actor, ADMINS_ONLY)
    if mode.builtin:
        raise NotPermitted(f"Built-in mode '{mode.name}' cannot be deleted.")
    with transaction.atomic():
        mode = PermissionMode.objects.select_for_update().get(pk=mode.pk)
        if mode.workspaces.exists() or mode.agents.exists():
            raise InvalidInput(f"Mode '{mode.name}' is in use by a workspace or agent.")
        audit_record(
            action=actions.PERMISSION_MODE_DELETED,
            actor_type="user",
            actor=actor.username,
            details={"mode": mode.name, "scopes": list(mode.scopes)},
        )
        mode.delete()
