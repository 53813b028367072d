"""A workspace's mode change costs the same few statements however many agents the workspace holds."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents.models import Workspace, WorkspaceAgent
from agents.services.workspaces import workspace_mode_set
from audit import actions
from audit.models import AuditEvent
from core import roles
from tests.helpers.factories import WorkspaceFactory, mode

pytestmark = pytest.mark.django_db


def _workspace_with_agents(count: int) -> Workspace:
    workspace = WorkspaceFactory()
    WorkspaceAgent.objects.bulk_create(WorkspaceAgent(workspace=workspace, name=f"agent-{n}") for n in range(count))
    return workspace


def _mode_change_queries(admin_user, count: int) -> list[str]:
    workspace = _workspace_with_agents(count)
    tighter = mode("no-user-data")
    roles.is_admin(admin_user)  # the role is read once per user object, not per change
    with CaptureQueriesContext(connection) as captured:
        workspace_mode_set(actor=admin_user, workspace=workspace, permission_mode=tighter, reason="scale")
    # Savepoints come from the test's own transaction, not from the change.
    return [query["sql"] for query in captured.captured_queries if "SAVEPOINT" not in query["sql"]]


def test_a_mode_change_on_a_workspace_with_200_agents_is_one_update_and_its_audit_row(admin_user):
    """The agents inherit by reference: no per-agent row is read or written, whatever their number."""
    queries = _mode_change_queries(admin_user, 200)
    writes = [sql for sql in queries if sql.lstrip().upper().startswith(("UPDATE", "INSERT", "DELETE"))]
    assert len(writes) == 2, writes
    assert writes[0].startswith('UPDATE "agents_workspace"')
    assert writes[1].startswith("INSERT INTO audit_auditevent ")
    assert not [sql for sql in queries if "agents_workspaceagent" in sql]
    assert AuditEvent.objects.filter(action=actions.WORKSPACE_MODE_CHANGED).count() == 1


def test_the_mode_change_costs_the_same_queries_for_2_agents_as_for_200(admin_user):
    small = _mode_change_queries(admin_user, 2)
    large = _mode_change_queries(admin_user, 200)
    assert len(small) == len(large)
    # Lock the workspace, share-lock both modes, the UPDATE, then the audit row's INSERT.
    assert len(large) == 4, large
