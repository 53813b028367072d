"""Workspaces and agents (docs/concepts.md): shapes, visibility per role, agent creation."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from tests.helpers.factories import AgentFactory, WorkspaceFactory, mode
from tests.helpers.responses import all_results, assert_status

pytestmark = pytest.mark.django_db


def test_workspace_and_agent_shapes(member_client, member):
    response = member_client.post(reverse("agents:workspace-list"), {"name": "dev"}, format="json")
    assert_status(response, 201)
    assert set(response.data) == {"id", "name", "owner", "permission_mode", "agents"}
    assert (response.data["owner"], response.data["agents"]) == (member.username, [])
    workspace_id = response.data["id"]

    response = member_client.post(reverse("agents:agent-create", args=[workspace_id]), {"name": "main"}, format="json")
    assert_status(response, 201)
    assert response.data == {
        "id": response.data["id"],
        "name": "main",
        "workspace_id": workspace_id,
        "permission_mode": None,
        "effective_permission_mode": "default",
    }
    workspace = member_client.get(reverse("agents:workspace-detail", args=[workspace_id]))
    assert [agent["name"] for agent in workspace.data["agents"]] == ["main"]
    agent = member_client.get(reverse("agents:agent-detail", args=[response.data["id"]]))
    assert_status(agent, 200)
    assert agent.data["app_statuses"] == []
    assert AuditEvent.objects.filter(workspace_id=workspace_id).exists()


def test_members_list_their_own_workspaces_and_admins_and_auditors_all(
    member_client, other_member_client, admin_client, auditor_client, member, other_member
):
    mine = WorkspaceFactory(owner=member)
    theirs = WorkspaceFactory(owner=other_member)

    def listed(client) -> set[str]:
        return {item["id"] for item in all_results(client, reverse("agents:workspace-list"))}

    assert listed(member_client) == {str(mine.pk)}
    assert listed(other_member_client) == {str(theirs.pk)}
    assert listed(admin_client) == {str(mine.pk), str(theirs.pk)}
    assert listed(auditor_client) == {str(mine.pk), str(theirs.pk)}
    assert_status(auditor_client.get(reverse("agents:workspace-detail", args=[theirs.pk])), 200)


def test_agent_names_are_unique_per_workspace(member_client, workspace):
    url = reverse("agents:agent-create", args=[workspace.pk])
    assert_status(member_client.post(url, {"name": "main"}, format="json"), 201)
    response = member_client.post(url, {"name": "main"}, format="json")
    assert_status(response, 400)
    assert "name" in response.json()


@pytest.mark.parametrize("name", ["", "has space", "-leading", "x" * 64, "semi;colon"])
def test_bad_names_are_a_400(member_client, workspace, name):
    assert_status(member_client.post(reverse("agents:workspace-list"), {"name": name}, format="json"), 400)
    url = reverse("agents:agent-create", args=[workspace.pk])
    assert_status(member_client.post(url, {"name": name}, format="json"), 400)


def test_admin_creates_an_agent_in_another_users_workspace(admin_client, workspace):
    response = admin_client.post(
        reverse("agents:agent-create", args=[workspace.pk]), {"name": "ops", "permission_mode": "all"}, format="json"
    )
    assert_status(response, 201)
    assert response.data["permission_mode"] == "default"


def test_agent_detail_shows_the_effective_mode(member_client, member):
    workspace = WorkspaceFactory(owner=member, permission_mode=mode("no-user-data"))
    agent = AgentFactory(workspace=workspace)
    response = member_client.get(reverse("agents:agent-detail", args=[agent.pk]))
    assert_status(response, 200)
    assert response.data["permission_mode"] is None
    assert response.data["effective_permission_mode"] == "no-user-data"


def test_unauthenticated_management_calls_are_401(api_client, workspace, agent):
    for url in (
        reverse("agents:workspace-list"),
        reverse("agents:workspace-detail", args=[workspace.pk]),
        reverse("agents:agent-detail", args=[agent.pk]),
        reverse("agents:agent-token-list", args=[agent.pk]),
    ):
        response = api_client.get(url)
        assert_status(response, 401)
        assert response["WWW-Authenticate"].startswith("Bearer")
