"""Writes of permission modes, and the audit of denied agent requests."""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction

from audit import actions
from audit.folding import fold_due
from audit.services import audit_record
from core.exceptions import InvalidInput, NotPermitted, ObjectNotFound
from policies import rules
from policies.models import PermissionMode
from policies.scopes import ALL_SCOPES, BUILTIN_MODES, MODE_ALIASES, ordered

logger = logging.getLogger(__name__)


def agent_access_denied_record(*, principal, route: str, method: str, scope: str, denied_by: str) -> None:
    """Every 403 on an agent route is evidence worth keeping (docs/audit.md), with the token's scopes so an
    auditor can tell a mode refusal from a narrow token's. Every refusal is logged; a loop of them writes at most
    one row per agent per CODERAUTH_LAST_USED_RESOLUTION, whose `folded` counts the refusals of that agent
    since its previous row that got no row of their own."""
    logger.warning(
        "Agent request denied: agent %s, token %s, %s %s needs %s (denied by %s)",
        principal.agent_id,
        principal.token_id,
        method,
        route,
        scope,
        denied_by,
    )
    with transaction.atomic():
        folded = fold_due(f"agent_denials_{principal.agent_id}")
        if folded is None:
            return
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
                "folded": folded,
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
    exists = InvalidInput(f"A permission mode named '{name}' already exists.", field="name")
    try:
        with transaction.atomic():
            if PermissionMode.objects.select_for_update().filter(name=name).exists():
                raise exists
            mode = PermissionMode.objects.create(name=name, description=description, scopes=scopes)
            audit_record(
                action=actions.PERMISSION_MODE_CREATED,
                actor_type="user",
                actor=actor.username,
                details={"mode": name, "scopes": scopes, "description": description},
            )
    except IntegrityError:  # created by a concurrent request since the check
        raise exists from None
    return mode


def _permission_mode_locked(mode: PermissionMode, *, no_key: bool) -> PermissionMode:
    """The mode locked and read fresh; deleted since the request found it: not found, as for any unknown name."""
    locked = PermissionMode.objects.select_for_update(no_key=no_key).filter(pk=mode.pk).first()
    if locked is None:
        raise ObjectNotFound(f"No permission mode named '{mode.pk}'.")
    return locked


def permission_mode_update(
    *, actor, mode: PermissionMode, description: str | None = None, scopes: list[str] | None = None
) -> PermissionMode:
    rules.require_admin(actor, ADMINS_ONLY)
    if mode.builtin:
        raise NotPermitted(f"Built-in mode '{mode.name}' cannot be changed.")
    with transaction.atomic():
        # NO KEY UPDATE: waits for writers that share-lock the mode to check its scopes (agents/services/locks.py)
        # but not for the foreign-key checks of rows that merely point at it.
        mode = _permission_mode_locked(mode, no_key=True)
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
        # FOR UPDATE, as the row goes: a writer about to point a workspace or agent at it holds a share lock,
        # so the check below sees its change once it commits, or the writer finds the mode gone.
        mode = _permission_mode_locked(mode, no_key=False)
        if mode.workspaces.exists() or mode.agents.exists():
            raise InvalidInput(f"Mode '{mode.name}' is in use by a workspace or agent.")
        audit_record(
            action=actions.PERMISSION_MODE_DELETED,
            actor_type="user",
            actor=actor.username,
            details={"mode": mode.name, "scopes": list(mode.scopes)},
        )
        mode.delete()
