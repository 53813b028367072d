"""Races on permission modes over HTTP: workspace, agent and bulk changes, custom-mode edits and deletes,
with agent tokens issued meanwhile. Afterwards: no 5xx, one audit event per change, and a serial history."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit import actions
from policies.scopes import ALL_SCOPES
from tests.helpers.factories import AgentFactory, CustomModeFactory, WorkspaceFactory, mode
from tests.reliability.harness import (
    SIZES,
    Writes,
    assert_audit_chain_verifies,
    assert_no_server_errors,
    assert_one_event_per_change,
    mixed,
    page_messages,
    signed_in_headers,
)
from tests.reliability.replay import ModeHistory

BUILTIN = ("default", "no-user-data")


def test_concurrent_mode_changes_of_one_workspace_never_answer_500(race, admin, owner):
    """Regression: PATCHes of one workspace's mode racing each other and token issues for its agent answered 500.

    The locking read joined the mode row; under READ COMMITTED PostgreSQL re-checked the locked, changed
    workspace row against the old mode row, the join failed and the row vanished (Workspace.DoesNotExist).
    Every PATCH must answer 200, and the last change in the audit log must be the workspace's mode."""
    workspace = WorkspaceFactory(owner=owner.user, permission_mode=mode("default"))
    agent = AgentFactory(workspace=workspace)
    history = ModeHistory.snapshot()
    workspace_url = reverse("agents:workspace-detail", args=[workspace.pk])
    tokens_url = reverse("agents:agent-token-list", args=[agent.pk])

    def change_mode(name):
        return lambda: race.call(
            "workspace.mode", "PATCH", workspace_url, token=admin.token, json={"permission_mode": name}
        )

    def issue_token():
        race.call("agent.token_issue", "POST", tokens_url, token=owner.token, json={"name": "race"})

    race.run(mixed(race, [(change_mode("default"), 50), (change_mode("no-user-data"), 50), (issue_token, 100)]))

    assert_no_server_errors(race)
    assert all(call.status == 200 for call in race.ops("workspace.mode"))
    assert all(call.status == 201 for call in race.ops("agent.token_issue"))
    assert_one_event_per_change(
        race,
        {
            "workspace.mode": Writes(actions.WORKSPACE_MODE_CHANGED, least=0),
            "agent.token_issue": Writes(actions.AGENT_TOKEN_ISSUED),
        },
    )
    history.replay().assert_serial()
    history.assert_matches_database()
    assert_audit_chain_verifies()


@pytest.mark.parametrize("size", SIZES)
def test_mode_changes_race(race, admin, owner, size):
    """Workspace, agent and bulk mode changes (by an admin and by the owner, who may only tighten), edits of the
    custom mode some of them use, and agent tokens issued meanwhile, on 20 threads. No 5xx; every change has
    exactly one audit event, every refusal none; replayed in commit order the log is a serial history (each
    change starts from where the last one left, each token lies within its mode) ending at the database."""
    narrow = CustomModeFactory(name="race-narrow", scopes=["agent:connect", "agent:gitsshkey"])
    workspaces = [WorkspaceFactory(owner=owner.user, permission_mode=mode("default")) for _ in range(3)]
    agents = [
        AgentFactory(workspace=workspaces[0]),
        AgentFactory(workspace=workspaces[0]),
        AgentFactory(workspace=workspaces[1]),
    ]
    modes = [*BUILTIN, narrow.name]
    session = signed_in_headers(admin.user)
    history = ModeHistory.snapshot()
    pick = race.random.choice
    people = (admin, owner)

    def workspace_mode():
        workspace = pick(workspaces[:2])
        url = reverse("agents:workspace-detail", args=[workspace.pk])
        race.call("workspace.mode", "PATCH", url, token=pick(people).token, json={"permission_mode": pick(modes)})

    def agent_mode():
        url = reverse("agents:agent-detail", args=[pick(agents).pk])
        race.call("agent.mode", "PATCH", url, token=pick(people).token, json={"permission_mode": pick([*modes, None])})

    def bulk_mode():
        form = {
            "workspace": [str(w.pk) for w in workspaces],
            "permission_mode": pick(modes),
            "reason": "race",
            "confirm_loosen": "on",
        }
        call = race.call("workspace.bulk_mode", "POST", reverse("ui:workspace-bulk"), data=form, headers=session)
        levels = {level for level, _ in page_messages(call)}
        call.meta["ok"] = call.status == 302 and "success" in levels and "error" not in levels

    def custom_mode_edit():
        scopes = sorted(race.random.sample(ALL_SCOPES, race.random.randint(0, len(ALL_SCOPES))))
        url = reverse("policies:permission-mode-detail", args=[narrow.name])
        race.call("mode.edit", "PATCH", url, token=admin.token, json={"scopes": scopes})

    def token_issue():
        url = reverse("agents:agent-token-list", args=[pick(agents).pk])
        race.call("agent.token_issue", "POST", url, token=owner.token, json={"name": "race"})

    operations = size.operations
    race.run(
        mixed(
            race,
            [
                (workspace_mode, operations),
                (agent_mode, operations),
                (bulk_mode, operations // 4),
                (custom_mode_edit, operations // 2),
                (token_issue, operations),
            ],
        )
    )

    assert_no_server_errors(race)
    assert all(call.ok for call in race.ops("workspace.bulk_mode")), [
        page_messages(c) for c in race.ops("workspace.bulk_mode") if not c.ok
    ][:5]
    assert_one_event_per_change(
        race,
        {
            "workspace.mode": Writes(actions.WORKSPACE_MODE_CHANGED, least=0),
            "agent.mode": Writes(actions.AGENT_MODE_CHANGED, least=0),
            "workspace.bulk_mode": Writes(actions.WORKSPACE_MODE_CHANGED, least=0, most=len(workspaces)),
            "mode.edit": Writes(actions.PERMISSION_MODE_UPDATED),
            "agent.token_issue": Writes(actions.AGENT_TOKEN_ISSUED),
        },
    )
    history.replay().assert_serial()
    history.assert_matches_database()
    assert_audit_chain_verifies()


@pytest.mark.parametrize("size", SIZES)
def test_custom_mode_delete_race(race, admin, owner, size):
    """Custom modes deleted, re-created and edited while workspaces and agents are switched to them. No 5xx
    (a mode deleted under a change is a 400, never a broken foreign key at commit); no mode is deleted while
    in use, and no workspace or agent ever points at a mode that was gone, in the log's commit order."""
    names = ["race-a", "race-b"]
    for name in names:
        CustomModeFactory(name=name, scopes=["agent:connect"])
    workspace = WorkspaceFactory(owner=owner.user, permission_mode=mode("default"))
    agents = [AgentFactory(workspace=workspace), AgentFactory(workspace=workspace)]
    history = ModeHistory.snapshot()
    pick = race.random.choice

    def delete():
        race.call(
            "mode.delete", "DELETE", reverse("policies:permission-mode-detail", args=[pick(names)]), token=admin.token
        )

    def create():
        body = {"name": pick(names), "scopes": ["agent:connect", "agent:report"]}
        race.call("mode.create", "POST", reverse("policies:permission-mode-list"), token=admin.token, json=body)

    def edit():
        url = reverse("policies:permission-mode-detail", args=[pick(names)])
        race.call("mode.edit", "PATCH", url, token=admin.token, json={"scopes": pick([["agent:connect"], []])})

    def workspace_mode():
        url = reverse("agents:workspace-detail", args=[workspace.pk])
        race.call(
            "workspace.mode", "PATCH", url, token=admin.token, json={"permission_mode": pick([*names, "default"])}
        )

    def agent_mode():
        url = reverse("agents:agent-detail", args=[pick(agents).pk])
        race.call("agent.mode", "PATCH", url, token=admin.token, json={"permission_mode": pick([*names, None])})

    operations = size.operations
    race.run(
        mixed(
            race,
            [
                (delete, operations),
                (create, operations),
                (edit, operations // 2),
                (workspace_mode, operations),
                (agent_mode, operations),
            ],
        )
    )

    assert_no_server_errors(race)
    assert {call.status for call in race.ops("mode.delete")} <= {204, 400, 404}
    assert_one_event_per_change(
        race,
        {
            "mode.delete": Writes(actions.PERMISSION_MODE_DELETED),
            "mode.create": Writes(actions.PERMISSION_MODE_CREATED),
            "mode.edit": Writes(actions.PERMISSION_MODE_UPDATED),
            "workspace.mode": Writes(actions.WORKSPACE_MODE_CHANGED, least=0),
            "agent.mode": Writes(actions.AGENT_MODE_CHANGED, least=0),
        },
    )
    history.replay().assert_serial()
    history.assert_matches_database()
    assert_audit_chain_verifies()
