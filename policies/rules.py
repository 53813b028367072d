"""Who may change what: the one home of the write rules that services, APIs and pages all apply.

Admins change anything. A workspace's owner changes their own workspace, but only towards fewer scopes
("owners may only tighten"). Auditors read everything and change nothing, not even a workspace they own.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings

from core.exceptions import NotPermitted, ObjectNotFound
from core.roles import is_admin, is_auditor
from policies.models import PermissionMode
from policies.scopes import ordered

OWNER_MAY_ONLY_TIGHTEN = "Workspace owners may only tighten permission modes; ask an admin to loosen them."
AUDITORS_READ_ONLY = "Auditors have read-only access."
ADMINS_OR_OWNER = "Only admins and the workspace owner may do this."
ADMINS_DECIDE_ELEVATION = "Only admins decide access requests here (CODERAUTH_ELEVATION_APPROVERS=admins)."


def may_write_workspace(actor, *, owner_id: int) -> bool:
    """Admins, and the owner of the workspace; never an auditor."""
    return not is_auditor(actor) and (is_admin(actor) or owner_id == actor.pk)


def require_writer(actor) -> None:
    """Anyone but an auditor may create what they will own."""
    if is_auditor(actor):
        raise NotPermitted(AUDITORS_READ_ONLY)


def require_workspace_writer(actor, *, owner_id: int) -> None:
    require_writer(actor)
    if not may_write_workspace(actor, owner_id=owner_id):
        raise NotPermitted(ADMINS_OR_OWNER)


def require_admin(actor, message: str) -> None:
    if not is_admin(actor):
        raise NotPermitted(message)


def added_scopes(current: PermissionMode, new: PermissionMode) -> list[str]:
    """Scopes a change from `current` to `new` would grant: empty for a tightening or an equal change."""
    return ordered(new.scope_set() - current.scope_set())


def may_set_mode(actor, *, current: PermissionMode, new: PermissionMode) -> bool:
    """Admins may set any mode; others only one whose scopes are within the current ones."""
    return is_admin(actor) or new.scope_set() <= current.scope_set()


def require_mode_change(actor, *, current: PermissionMode, new: PermissionMode, message: str = OWNER_MAY_ONLY_TIGHTEN):
    if not may_set_mode(actor, current=current, new=new):
        raise NotPermitted(message)


def mode_choices(actor, *, current: PermissionMode, modes: Iterable[PermissionMode]) -> list[PermissionMode]:
    """The modes `actor` may switch to from `current`: every mode for admins, the tighter ones for owners."""
    return [mode for mode in modes if may_set_mode(actor, current=current, new=mode)]


def may_decide_access_request(actor, *, owner_id: int) -> bool:
    """Admins decide any access request; the workspace's owner too, unless CODERAUTH_ELEVATION_APPROVERS is
    "admins"; never an auditor."""
    if is_auditor(actor):
        return False
    if is_admin(actor):
        return True
    return settings.CODERAUTH_ELEVATION_APPROVERS == "owners" and owner_id == actor.pk


def require_access_request_decider(actor, *, owner_id: int) -> None:
    """Auditors and, with approvers set to admins, owners see the request but may not decide it (NotPermitted);
    any other member does not see it at all (ObjectNotFound)."""
    if may_decide_access_request(actor, owner_id=owner_id):
        return
    if is_auditor(actor):
        raise NotPermitted(AUDITORS_READ_ONLY)
    if owner_id == actor.pk:
        raise NotPermitted(ADMINS_DECIDE_ELEVATION)
    raise ObjectNotFound("No such access request.")
