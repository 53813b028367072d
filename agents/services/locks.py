"""The row locks of the write paths, and the one order every write takes them in (docs/architecture.md).

Order: workspaces (by id), then agents (an agent's row also guards its token tree), then permission modes
(by name), and the audit chain last (audit_record takes it and holds it until commit). A user's row guards
their git SSH key; no write locks it together with any other. A writer therefore only ever waits for a row
lock while it holds no chain lock, and two writers never wait for each other.

A row the write changes is locked FOR NO KEY UPDATE, a row it only depends on (a workspace's mode for an
agent's change, the modes whose scopes it checks) FOR SHARE. Neither conflicts with the KEY SHARE lock a
foreign-key check takes at commit, while the chain lock is held. Each lock is one statement on one table:
under READ COMMITTED it returns the row's latest committed version. A locking statement that joined another
table would re-check a changed row against that table's old row and could drop it.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth import get_user_model

from agents.models import Workspace, WorkspaceAgent
from core.exceptions import InvalidInput, ObjectNotFound
from policies.models import PermissionMode


def _share_locked(model, ids: list) -> list:
    """FOR SHARE, which Django's select_for_update does not offer. The names come from the model, not input."""
    table, pk = model._meta.db_table, model._meta.pk.column
    sql = f"SELECT * FROM {table} WHERE {pk} = ANY(%s) ORDER BY {pk} FOR SHARE"  # noqa: S608
    return list(model.objects.raw(sql, [ids]))


def workspaces_lock(workspace_ids: Iterable, *, share: bool = False) -> list[Workspace]:
    """The workspaces, locked in id order and read fresh; `share` for a write that only depends on them."""
    ids = sorted(set(workspace_ids))
    if share:
        return _share_locked(Workspace, ids)
    return list(Workspace.objects.select_for_update(no_key=True).filter(pk__in=ids).order_by("pk"))


def workspace_lock(workspace_id, *, share: bool = False) -> Workspace:
    found = workspaces_lock([workspace_id], share=share)
    if not found:
        raise ObjectNotFound("No such workspace.")
    return found[0]


def agent_lock(agent_id, *, share: bool = False) -> WorkspaceAgent:
    """The agent, locked and read fresh. Exclusive for its own changes and for changes to its token tree."""
    if share:
        found = _share_locked(WorkspaceAgent, [agent_id])
    else:
        found = list(WorkspaceAgent.objects.select_for_update(no_key=True).filter(pk=agent_id))
    if not found:
        raise ObjectNotFound("No such agent.")
    return found[0]


def modes_lock(names: Iterable[str | None]) -> dict[str, PermissionMode]:
    """Share-lock the named modes (None is skipped) and read them fresh: a concurrent edit of their scopes
    waits for this transaction, a mode deleted meanwhile is missing from the result."""
    return {mode.name: mode for mode in _share_locked(PermissionMode, sorted({name for name in names if name}))}


def mode_found(modes: dict[str, PermissionMode], name: str, *, field: str = "permission_mode") -> PermissionMode:
    """A mode the request named, deleted since the request read it: the same answer as for an unknown name."""
    if name not in modes:
        raise InvalidInput(f"Unknown permission mode '{name}'.", field=field)
    return modes[name]


def agent_with_modes_lock(
    agent_id, *, agent_share: bool, also: Iterable[str | None] = ()
) -> tuple[WorkspaceAgent, dict[str, PermissionMode]]:
    """An agent with its workspace and both candidate modes (and the modes named in `also`), all locked in
    order and read fresh: its effective mode cannot change before commit. The workspace is share-locked."""
    workspace_id = WorkspaceAgent.objects.filter(pk=agent_id).values_list("workspace_id", flat=True).first()
    if workspace_id is None:
        raise ObjectNotFound("No such agent.")
    workspace = workspace_lock(workspace_id, share=True)
    agent = agent_lock(agent_id, share=agent_share)
    modes = modes_lock([workspace.permission_mode_id, agent.permission_mode_id, *also])
    workspace.permission_mode = modes[workspace.permission_mode_id]
    agent.workspace = workspace
    agent.permission_mode = modes[agent.permission_mode_id] if agent.permission_mode_id else None
    return agent, modes


def user_lock(user_id) -> None:
    """One writer of a user's own data (the git SSH key) at a time."""
    list(get_user_model().objects.select_for_update(no_key=True).filter(pk=user_id).values_list("pk"))
