"""Workspaces, agents and their permission modes."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from agents.models import Workspace, WorkspaceAgent
from agents.services import locks
from audit import actions
from audit.services import audit_record
from core.exceptions import InvalidInput
from policies import rules
from policies.models import PermissionMode
from policies.selectors import site_default_mode


def workspace_create(
    *, actor, name: str, owner_username: str | None = None, permission_mode: PermissionMode | None = None
) -> Workspace:
    """A workspace for the actor, or (admins only) for the user named `owner_username`."""
    rules.require_writer(actor)
    owner = actor
    if owner_username is not None and owner_username != actor.username:
        # Refuse before the lookup: a member must not learn which usernames exist from 400 versus 403.
        rules.require_admin(actor, "Only admins may create workspaces for other users.")
        owner = get_user_model().objects.filter(username=owner_username).first()
        if owner is None:
            raise InvalidInput("No such user.", field="owner")
    default_mode = site_default_mode()
    mode = permission_mode or default_mode
    try:
        with transaction.atomic():
            # Checked against the modes as locked (agents/services/locks.py): a mode deleted or edited
            # meanwhile is seen, and neither changes before commit.
            modes = locks.modes_lock([default_mode.pk, mode.pk])
            mode = locks.mode_found(modes, mode.pk)
            rules.require_mode_change(
                actor,
                current=modes.get(default_mode.pk, default_mode),
                new=mode,
                message=(
                    f"Only admins may create a workspace in a mode looser than the site default '{default_mode.name}'."
                ),
            )
            workspace = Workspace.objects.create(name=name, owner=owner, permission_mode=mode)
            audit_record(
                action=actions.WORKSPACE_CREATED,
                actor_type="user",
                actor=actor.username,
                workspace_id=workspace.id,
                details={"name": name, "owner": owner.username, "mode": mode.name},
            )
    except IntegrityError:
        raise InvalidInput(f"{owner.username} already has a workspace named '{name}'.", field="name")
    return workspace


def agent_create(
    *, actor, workspace: Workspace, name: str, permission_mode: PermissionMode | None = None
) -> WorkspaceAgent:
    rules.require_workspace_writer(actor, owner_id=workspace.owner_id)
    try:
        with transaction.atomic():
            workspace = locks.workspace_lock(workspace.pk, share=True)
            if permission_mode is not None:
                # An agent's override starts from its workspace's mode: owners may only make it tighter.
                modes = locks.modes_lock([workspace.permission_mode_id, permission_mode.pk])
                permission_mode = locks.mode_found(modes, permission_mode.pk)
                rules.require_mode_change(actor, current=modes[workspace.permission_mode_id], new=permission_mode)
            agent = WorkspaceAgent.objects.create(workspace=workspace, name=name, permission_mode=permission_mode)
            audit_record(
                action=actions.AGENT_CREATED,
                actor_type="user",
                actor=actor.username,
                workspace_id=workspace.id,
                agent_id=agent.id,
                details={"name": name, "mode": permission_mode.name if permission_mode else None},
            )
    except IntegrityError:
        raise InvalidInput(f"Workspace '{workspace.name}' already has an agent named '{name}'.", field="name")
    return agent


def workspace_mode_set(*, actor, workspace: Workspace, permission_mode: PermissionMode, reason: str = "") -> Workspace:
    """Admins change anything; the owner only tightens (new scopes ⊆ current scopes)."""
    rules.require_workspace_writer(actor, owner_id=workspace.owner_id)
    with transaction.atomic():
        # Lock the row alone, then read its modes (agents/services/locks.py): a locking query that also
        # joined the mode would, under READ COMMITTED, re-check the changed row against the old mode row and
        # find nothing. Share-locking both modes keeps their scopes, and the new mode itself, until commit.
        workspace = locks.workspace_lock(workspace.pk)
        modes = locks.modes_lock([workspace.permission_mode_id, permission_mode.pk])
        current = workspace.permission_mode = modes[workspace.permission_mode_id]
        permission_mode = locks.mode_found(modes, permission_mode.pk)
        rules.require_mode_change(actor, current=current, new=permission_mode)
        if current.pk == permission_mode.pk:
            return workspace
        workspace.permission_mode = permission_mode
        workspace.save(update_fields=["permission_mode", "updated_at"])
        audit_record(
            action=actions.WORKSPACE_MODE_CHANGED,
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
    rules.require_workspace_writer(actor, owner_id=agent.workspace.owner_id)
    with transaction.atomic():
        # The workspace's mode decides the agent's effective one: it stays put until commit (share lock).
        agent, modes = locks.agent_with_modes_lock(
            agent.pk, agent_share=False, also=[permission_mode.pk if permission_mode else None]
        )
        if permission_mode is not None:
            permission_mode = locks.mode_found(modes, permission_mode.pk)
        current_override = agent.permission_mode
        current_effective = agent.effective_permission_mode
        new_effective = permission_mode or agent.workspace.permission_mode
        rules.require_mode_change(actor, current=current_effective, new=new_effective)
        if (current_override and current_override.pk) == (permission_mode and permission_mode.pk):
            return agent
        agent.permission_mode = permission_mode
        agent.save(update_fields=["permission_mode", "updated_at"])
        audit_record(
            action=actions.AGENT_MODE_CHANGED,
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
    rules.require_writer(actor)
    with transaction.atomic():
        # Every row lock first, in the one order (agents/services/locks.py), before the first audit write
        # takes the chain lock: a lock taken while holding the chain could wait for a writer queued for it.
        locked = locks.workspaces_lock([w.pk for w in workspaces])
        locks.modes_lock([w.permission_mode_id for w in locked] + [permission_mode.pk])
        return [
            workspace_mode_set(actor=actor, workspace=workspace, permission_mode=permission_mode, reason=reason)
            for workspace in workspaces
        ]
