"""Workspaces, agents and their permission modes."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from agents.models import Workspace, WorkspaceAgent
from audit.services import audit_record
from coderauth.exceptions import ServicePermissionDenied, ServiceValidationError
from policies.models import PermissionMode
from policies.roles import is_admin, is_auditor
from policies.selectors import site_default_mode

OWNER_MAY_ONLY_TIGHTEN = "Workspace owners may only tighten permission modes; ask an admin to loosen them."


def _require_writer(actor) -> None:
    if is_auditor(actor):
        raise ServicePermissionDenied("Auditors have read-only access.")


def _require_admin_or_owner(actor, workspace: Workspace) -> None:
    _require_writer(actor)
    if not (is_admin(actor) or workspace.owner_id == actor.pk):
        raise ServicePermissionDenied("Only admins and the workspace owner may do this.")


def workspace_create(
    *, actor, name: str, owner_username: str | None = None, permission_mode: PermissionMode | None = None
) -> Workspace:
    """A workspace for the actor, or (admins only) for the user named `owner_username`."""
    _require_writer(actor)
    owner = actor
    if owner_username is not None and owner_username != actor.username:
        # Refuse before the lookup: a member must not learn which usernames exist from 400 versus 403.
        if not is_admin(actor):
            raise ServicePermissionDenied("Only admins may create workspaces for other users.")
        owner = get_user_model().objects.filter(username=owner_username).first()
        if owner is None:
            raise ServiceValidationError("No such user.", field="owner")
    default_mode = site_default_mode()
    mode = permission_mode or default_mode
    if not is_admin(actor) and not mode.scope_set() <= default_mode.scope_set():
        raise ServicePermissionDenied(
            f"Only admins may create a workspace in a mode looser than the site default '{default_mode.name}'."
        )
    try:
        with transaction.atomic():
            workspace = Workspace.objects.create(name=name, owner=owner, permission_mode=mode)
            audit_record(
                action="workspace.created",
                actor_type="user",
                actor=actor.username,
                workspace_id=workspace.id,
                details={"name": name, "owner": owner.username, "mode": mode.name},
            )
    except IntegrityError:
        raise ServiceValidationError(f"{owner.username} already has a workspace named '{name}'.", field="name")
    return workspace


def agent_create(
    *, actor, workspace: Workspace, name: str, permission_mode: PermissionMode | None = None
) -> WorkspaceAgent:
    _require_admin_or_owner(actor, workspace)
    # Owners may only create agents at least as tight as their workspace.
    looser = permission_mode is not None and not permission_mode.scope_set() <= workspace.permission_mode.scope_set()
    if looser and not is_admin(actor):
        raise ServicePermissionDenied(OWNER_MAY_ONLY_TIGHTEN)
    try:
        with transaction.atomic():
            agent = WorkspaceAgent.objects.create(workspace=workspace, name=name, permission_mode=permission_mode)
            audit_record(
                action="agent.created",
                actor_type="user",
                actor=actor.username,
                workspace_id=workspace.id,
                agent_id=agent.id,
                details={"name": name, "mode": permission_mode.name if permission_mode else None},
            )
    except IntegrityError:
        raise ServiceValidationError(f"Workspace '{workspace.name}' already has an agent named '{name}'.", field="name")
    return agent


def workspace_mode_set(*, actor, workspace: Workspace, permission_mode: PermissionMode, reason: str = "") -> Workspace:
    """Admins change anything; the owner only tightens (new scopes ⊆ current scopes)."""
    _require_admin_or_owner(actor, workspace)
    with transaction.atomic():
        workspace = Workspace.objects.select_for_update().select_related("permission_mode").get(pk=workspace.pk)
        current = workspace.permission_mode
        if not is_admin(actor) and not permission_mode.scope_set() <= current.scope_set():
            raise ServicePermissionDenied(OWNER_MAY_ONLY_TIGHTEN)
        if current.pk == permission_mode.pk:
            return workspace
        workspace.permission_mode = permission_mode
        workspace.save(update_fields=["permission_mode", "updated_at"])
        audit_record(
            action="workspace.mode_changed",
            actor_type="user",
            actor=actor.username,
            workspace_id=workspace.id,
            details={"from": current.name, "to": permission_mode.name, "reason": reason},
        )
    return workspace


def agent_mode_set(
    *, actor, agent: WorkspaceAgent, permission_mode: PermissionMode | None, reason: str = ""
) -> WorkspaceAgent:
    """Set or clear (None = inherit) an agent's override; owners only tighten its effective scopes."""
    _require_admin_or_owner(actor, agent.workspace)
    with transaction.atomic():
        agent = (
            WorkspaceAgent.objects.select_for_update(of=("self",))
            .select_related("workspace__permission_mode", "permission_mode")
            .get(pk=agent.pk)
        )
        current_override = agent.permission_mode
        current_effective = agent.effective_permission_mode
        new_effective = permission_mode or agent.workspace.permission_mode
        if not is_admin(actor) and not new_effective.scope_set() <= current_effective.scope_set():
            raise ServicePermissionDenied(OWNER_MAY_ONLY_TIGHTEN)
        if (current_override and current_override.pk) == (permission_mode and permission_mode.pk):
            return agent
        agent.permission_mode = permission_mode
        agent.save(update_fields=["permission_mode", "updated_at"])
        audit_record(
            action="agent.mode_changed",
            actor_type="user",
            actor=actor.username,
            workspace_id=agent.workspace_id,
            agent_id=agent.id,
            details={
                "from": current_override.name if current_override else None,
                "to": permission_mode.name if permission_mode else None,
                "effective_from": current_effective.name,
                "effective_to": new_effective.name,
                "reason": reason,
            },
        )
    return agent


def workspace_mode_set_bulk(
    *, actor, workspaces: list[Workspace], permission_mode: PermissionMode, reason: str = ""
) -> list[Workspace]:
    """Set one mode on several workspaces all-or-nothing: one audit event each, one transaction.

    Each change goes through workspace_mode_set so the same rules apply as for a single change;
    the first refusal rolls every earlier change (and its audit event) back.
    """
    _require_writer(actor)
    with transaction.atomic():
        # Lock every target row first, in one fixed order, before the first audit write takes the
        # audit lock: otherwise a concurrent single change (workspace lock, then audit lock) deadlocks.
        list(Workspace.objects.select_for_update().filter(pk__in=[w.pk for w in workspaces]).order_by("pk"))
        return [
            workspace_mode_set(actor=actor, workspace=workspace, permission_mode=permission_mode, reason=reason)
            for workspace in workspaces
        ]
