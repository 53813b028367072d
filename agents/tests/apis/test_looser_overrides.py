"""PATCH /api/v2/workspaces/{id} says which agents keep a looser override: a workspace change does not limit them."""

from __future__ import annotations

import pytest
from django.urls import reverse
from drf_spectacular.generators import SchemaGenerator

from agents.selectors.workspaces import agent_looser_override_list
from tests.helpers.factories import AgentFactory, CustomModeFactory, WorkspaceFactory, mode
from tests.helpers.responses import assert_status

pytestmark = pytest.mark.django_db


def _patch(client, workspace, mode_name: str):
    url = reverse("agents:workspace-detail", args=[workspace.pk])
    return client.patch(url, {"permission_mode": mode_name, "reason": "r"}, format="json")


def test_tightening_names_the_agents_whose_override_stays_looser(admin_client, workspace):
    """Regression: switching a workspace to no-user-data silently left an agent on `default` able to read the
    owner's SSH key; the answer now names it with the scopes the workspace's mode would have taken away."""
    loose = AgentFactory(workspace=workspace, name="builder", permission_mode=mode("default"))
    git_only = AgentFactory(workspace=workspace, name="ci", permission_mode=CustomModeFactory())
    AgentFactory(workspace=workspace, name="inherits")
    AgentFactory(workspace=workspace, name="tight", permission_mode=mode("no-user-data"))

    response = _patch(admin_client, workspace, "no-user-data")
    assert_status(response, 200)
    body = response.json()
    assert body["permission_mode"] == "no-user-data"
    assert body["agents_with_looser_overrides"] == [
        {
            "id": str(loose.pk),
            "name": "builder",
            "permission_mode": "default",
            "extra_scopes": ["agent:gitsshkey", "agent:external-auth"],
        },
        {"id": str(git_only.pk), "name": "ci", "permission_mode": "git-only", "extra_scopes": ["agent:gitsshkey"]},
    ]


def test_no_looser_override_answers_an_empty_list(member_client, workspace):
    AgentFactory(workspace=workspace, name="inherits")
    AgentFactory(workspace=workspace, name="tight", permission_mode=mode("no-user-data"))
    response = _patch(member_client, workspace, "no-user-data")
    assert_status(response, 200)
    assert response.json()["agents_with_looser_overrides"] == []


def test_an_override_equal_to_or_within_the_new_mode_is_not_looser(admin_client):
    workspace = WorkspaceFactory(permission_mode=mode("no-user-data"))
    AgentFactory(workspace=workspace, name="same", permission_mode=mode("default"))
    AgentFactory(workspace=workspace, name="git", permission_mode=CustomModeFactory())
    response = _patch(admin_client, workspace, "default")
    assert_status(response, 200)
    assert response.json()["agents_with_looser_overrides"] == []


def test_the_field_is_declared_in_the_openapi_schema():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operation = schema["paths"]["/api/v2/workspaces/{workspace_id}"]["patch"]
    reference = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    component = schema["components"]["schemas"][reference.rsplit("/", 1)[-1]]
    assert "agents_with_looser_overrides" in component["required"]
    items = component["properties"]["agents_with_looser_overrides"]["items"]["$ref"]
    entry = schema["components"]["schemas"][items.rsplit("/", 1)[-1]]
    assert set(entry["properties"]) == {"id", "name", "permission_mode", "extra_scopes"}
    assert entry["properties"]["extra_scopes"]["type"] == "array"


def test_the_selector_compares_with_each_workspace_own_mode(django_assert_num_queries):
    strict = WorkspaceFactory(name="a-strict", permission_mode=mode("no-user-data"))
    open_ = WorkspaceFactory(name="b-open", permission_mode=mode("default"))
    AgentFactory(workspace=strict, name="main", permission_mode=mode("default"))
    AgentFactory(workspace=open_, name="main", permission_mode=mode("default"))
    with django_assert_num_queries(1):
        found = agent_looser_override_list(workspaces=[strict, open_])
    assert [(item.agent.workspace.name, item.agent.name) for item in found] == [("a-strict", "main")]
