"""Permission-mode changes: who may make them, and that they bite existing tokens on their next request."""

from __future__ import annotations

import pytest
from django.urls import reverse

from agents.models import AgentToken, Workspace, WorkspaceAgent
from agents.services.tokens import agent_token_issue
from audit.models import AuditEvent
from tests.helpers.clients import client_for_agent_token, client_for_user
from tests.helpers.factories import AgentFactory, CustomModeFactory, WorkspaceFactory, mode
from tests.helpers.responses import all_results, assert_status

pytestmark = pytest.mark.django_db

GITSSHKEY = "agents:agent-gitsshkey"
MANIFEST = "agents:agent-manifest"


def _workspace_url(workspace) -> str:
    return reverse("agents:workspace-detail", args=[workspace.pk])


def _agent_url(agent) -> str:
    return reverse("agents:agent-detail", args=[agent.pk])


def test_mode_change_bites_an_already_issued_token_on_its_next_request(member_client, workspace, agent_client):
    """Modes are evaluated at request time: no token outlives a tightening (docs/concepts.md, "effective mode")."""
    assert_status(agent_client.get(reverse(GITSSHKEY)), 200)

    response = member_client.patch(
        _workspace_url(workspace), {"permission_mode": "no-user-data", "reason": "incident 42"}, format="json"
    )
    assert_status(response, 200)

    response = agent_client.get(reverse(GITSSHKEY))
    assert_status(response, 403)
    assert response.json()["permission_mode"] == "no-user-data"
    assert response.json()["required_scope"] == "agent:gitsshkey"
    assert agent_client.get(reverse(MANIFEST)).json()["scopes"] == ["agent:connect", "agent:report"]
    event = AuditEvent.objects.filter(action="workspace.mode_changed").latest("id")
    assert event.details["from"] == "default"
    assert event.details["to"] == "no-user-data"
    assert event.details["reason"] == "incident 42"
    assert event.workspace_id == workspace.pk


def test_loosening_by_admin_also_applies_to_existing_tokens(admin_client, member):
    workspace = WorkspaceFactory(owner=member, permission_mode=mode("no-user-data"))
    agent = AgentFactory(workspace=workspace)
    owner_client = client_for_user(member)
    issued = owner_client.post(
        reverse("agents:agent-token-list", args=[agent.pk]),
        {"scopes": ["agent:connect", "agent:report"]},
        format="json",
    )
    assert_status(issued, 201)
    agent_client = client_for_agent_token(issued.data["token"])
    assert_status(agent_client.get(reverse(GITSSHKEY)), 403)

    assert_status(admin_client.patch(_workspace_url(workspace), {"permission_mode": "default"}, format="json"), 200)

    # The token itself never held agent:gitsshkey: loosening the mode does not widen a token.
    assert_status(agent_client.get(reverse(GITSSHKEY)), 403)
    assert agent_client.get(reverse(MANIFEST)).json()["scopes"] == ["agent:connect", "agent:report"]


def test_agent_override_beats_the_workspace_mode(admin_client, member):
    workspace = WorkspaceFactory(owner=member, permission_mode=mode("default"))
    locked, free = AgentFactory(workspace=workspace), AgentFactory(workspace=workspace)
    locked_client = client_for_agent_token(agent_token_issue(actor=member, agent=locked).plaintext)
    free_client = client_for_agent_token(agent_token_issue(actor=member, agent=free).plaintext)

    response = admin_client.patch(_agent_url(locked), {"permission_mode": "no_user_data"}, format="json")
    assert_status(response, 200)
    assert response.data["permission_mode"] == "no-user-data"
    assert response.data["effective_permission_mode"] == "no-user-data"

    assert_status(locked_client.get(reverse(GITSSHKEY)), 403)
    assert_status(free_client.get(reverse(GITSSHKEY)), 200)

    # An override looser than the workspace wins too (admins only).
    Workspace.objects.filter(pk=workspace.pk).update(permission_mode="no-user-data")
    assert_status(admin_client.patch(_agent_url(free), {"permission_mode": "default"}, format="json"), 200)
    assert_status(free_client.get(reverse(GITSSHKEY)), 200)
    assert free_client.get(reverse(MANIFEST)).json()["permission_mode"] == "default"


def test_clearing_the_override_inherits_the_workspace_mode_again(admin_client, member):
    workspace = WorkspaceFactory(owner=member, permission_mode=mode("default"))
    agent = AgentFactory(workspace=workspace, permission_mode=mode("no-user-data"))
    agent_client = client_for_agent_token(
        agent_token_issue(actor=member, agent=agent, scopes=["agent:connect"]).plaintext
    )
    full = agent_token_issue(actor=member, agent=agent).plaintext
    assert AgentToken.objects.filter(agent=agent).count() == 2
    assert_status(agent_client.get(reverse(MANIFEST)), 200)
    assert_status(client_for_agent_token(full).get(reverse(GITSSHKEY)), 403)

    response = admin_client.patch(_agent_url(agent), {"permission_mode": None, "reason": "inherit"}, format="json")

    assert_status(response, 200)
    assert response.data["permission_mode"] is None
    assert response.data["effective_permission_mode"] == "default"
    assert client_for_agent_token(full).get(reverse(MANIFEST)).json()["permission_mode"] == "default"
    event = AuditEvent.objects.filter(action="agent.mode_changed").latest("id")
    assert (event.details["from"], event.details["to"]) == ("no-user-data", None)
    assert event.details["effective_to"] == "default"


# --- Coder's aliases ---------------------------------------------------------------------------------


def test_aliases_are_accepted_on_input_and_answered_canonically(member_client, member):
    response = member_client.post(
        reverse("agents:workspace-list"), {"name": "aliased", "permission_mode": "all"}, format="json"
    )
    assert_status(response, 201)
    assert response.data["permission_mode"] == "default"
    workspace_id = response.data["id"]

    response = member_client.post(
        reverse("agents:agent-create", args=[workspace_id]),
        {"name": "a1", "permission_mode": "no_user_data"},
        format="json",
    )
    assert_status(response, 201)
    assert response.data["permission_mode"] == "no-user-data"
    assert response.data["effective_permission_mode"] == "no-user-data"

    response = member_client.patch(
        reverse("agents:workspace-detail", args=[workspace_id]), {"permission_mode": "no_user_data"}, format="json"
    )
    assert_status(response, 200)
    assert response.data["permission_mode"] == "no-user-data"
    assert Workspace.objects.get(pk=workspace_id).permission_mode_id == "no-user-data"

    response = member_client.get(reverse("policies:permission-mode-detail", args=["no_user_data"]))
    assert_status(response, 200)
    assert response.data["name"] == "no-user-data"


def test_unknown_mode_is_a_400_with_a_field_error(member_client, workspace):
    response = member_client.patch(_workspace_url(workspace), {"permission_mode": "everything"}, format="json")
    assert_status(response, 400)
    assert "permission_mode" in response.json()


# --- Ownership ---------------------------------------------------------------------------------------


def test_another_member_gets_404_on_every_workspace_agent_and_token_route(other_member_client, workspace, agent):
    """Objects of another user's workspace do not exist for a member (no existence leak, docs/concepts.md)."""
    token = agent_token_issue(actor=workspace.owner, agent=agent)
    calls = [
        ("get", reverse("agents:workspace-detail", args=[workspace.pk]), None),
        ("patch", reverse("agents:workspace-detail", args=[workspace.pk]), {"permission_mode": "no-user-data"}),
        ("post", reverse("agents:agent-create", args=[workspace.pk]), {"name": "intruder"}),
        ("get", reverse("agents:agent-detail", args=[agent.pk]), None),
        ("patch", reverse("agents:agent-detail", args=[agent.pk]), {"permission_mode": "no-user-data"}),
        ("get", reverse("agents:agent-token-list", args=[agent.pk]), None),
        ("post", reverse("agents:agent-token-list", args=[agent.pk]), {"name": "stolen"}),
        ("delete", reverse("agents:agent-token-detail", args=[agent.pk, token.token.pk]), None),
    ]
    for method, url, body in calls:
        response = getattr(other_member_client, method)(url, body, format="json")
        assert_status(response, 404)
        assert response.json() == {"detail": "Not found."} or "detail" in response.json()

    assert str(workspace.pk) not in {
        item["id"] for item in all_results(other_member_client, reverse("agents:workspace-list"))
    }
    assert not AgentToken.objects.get(pk=token.token.pk).is_revoked()
    assert Workspace.objects.get(pk=workspace.pk).permission_mode_id == "default"
    assert not WorkspaceAgent.objects.filter(name="intruder").exists()


# --- Tighten versus loosen ---------------------------------------------------------------------------


def test_owner_may_tighten_a_workspace_but_not_loosen_it(member_client, workspace):
    CustomModeFactory()
    assert_status(member_client.patch(_workspace_url(workspace), {"permission_mode": "git-only"}, format="json"), 200)
    assert_status(
        member_client.patch(_workspace_url(workspace), {"permission_mode": "no-user-data"}, format="json"), 200
    )

    for looser in ("git-only", "default", "all"):
        response = member_client.patch(_workspace_url(workspace), {"permission_mode": looser}, format="json")
        assert_status(response, 403)
    assert Workspace.objects.get(pk=workspace.pk).permission_mode_id == "no-user-data"
    assert AuditEvent.objects.filter(action="workspace.mode_changed").count() == 2


def test_owner_may_tighten_an_agent_override_but_not_loosen_or_clear_into_a_looser_mode(member_client, member):
    workspace = WorkspaceFactory(owner=member, permission_mode=mode("default"))
    agent = AgentFactory(workspace=workspace)

    assert_status(member_client.patch(_agent_url(agent), {"permission_mode": "no-user-data"}, format="json"), 200)
    # Clearing the override would inherit 'default', which is looser than the agent's current effective mode.
    assert_status(member_client.patch(_agent_url(agent), {"permission_mode": None}, format="json"), 403)
    assert_status(member_client.patch(_agent_url(agent), {"permission_mode": "default"}, format="json"), 403)
    assert WorkspaceAgent.objects.get(pk=agent.pk).permission_mode_id == "no-user-data"


def test_owner_may_clear_an_override_when_the_workspace_mode_is_not_looser(member_client, member):
    workspace = WorkspaceFactory(owner=member, permission_mode=mode("no-user-data"))
    agent = AgentFactory(workspace=workspace, permission_mode=mode("default"))

    response = member_client.patch(_agent_url(agent), {"permission_mode": None}, format="json")

    assert_status(response, 200)
    assert response.data["effective_permission_mode"] == "no-user-data"


def test_owner_may_not_create_an_agent_looser_than_its_workspace(member_client, member):
    workspace = WorkspaceFactory(owner=member, permission_mode=mode("no-user-data"))
    response = member_client.post(
        reverse("agents:agent-create", args=[workspace.pk]),
        {"name": "loose", "permission_mode": "default"},
        format="json",
    )
    assert_status(response, 403)


def test_admin_may_make_any_change(admin_client, admin_user, workspace, agent):
    CustomModeFactory()
    for new_mode in ("no-user-data", "git-only", "default"):
        assert_status(admin_client.patch(_workspace_url(workspace), {"permission_mode": new_mode}, format="json"), 200)
    for new_mode in ("no-user-data", "default", None):
        assert_status(admin_client.patch(_agent_url(agent), {"permission_mode": new_mode}, format="json"), 200)
    event = AuditEvent.objects.filter(action="workspace.mode_changed").latest("id")
    assert (event.actor_type, event.actor) == ("user", admin_user.username)
    assert WorkspaceAgent.objects.get(pk=agent.pk).permission_mode_id is None


# --- Auditors ----------------------------------------------------------------------------------------


def test_auditor_is_refused_every_write(auditor_client, workspace, agent):
    """Auditors read everything and change nothing (docs/concepts.md): every write is a 403."""
    token = agent_token_issue(actor=workspace.owner, agent=agent)
    writes = [
        ("post", reverse("agents:workspace-list"), {"name": "audit-ws"}),
        ("patch", reverse("agents:workspace-detail", args=[workspace.pk]), {"permission_mode": "no-user-data"}),
        ("post", reverse("agents:agent-create", args=[workspace.pk]), {"name": "audit-agent"}),
        ("patch", reverse("agents:agent-detail", args=[agent.pk]), {"permission_mode": "no-user-data"}),
        ("post", reverse("agents:agent-token-list", args=[agent.pk]), {"name": "audit-token"}),
        ("delete", reverse("agents:agent-token-detail", args=[agent.pk, token.token.pk]), None),
        ("post", reverse("policies:permission-mode-list"), {"name": "audit-mode", "scopes": ["agent:connect"]}),
        ("patch", reverse("policies:permission-mode-detail", args=["default"]), {"description": "x"}),
        ("delete", reverse("policies:permission-mode-detail", args=["no-user-data"]), None),
        ("post", reverse("agents:external-auth-providers"), {"id": "gitlab", "type": "gitlab", "regex": "gitlab"}),
    ]
    for method, url, body in writes:
        response = getattr(auditor_client, method)(url, body, format="json")
        assert_status(response, 403)

    assert_status(auditor_client.get(reverse("agents:workspace-detail", args=[workspace.pk])), 200)
    assert_status(auditor_client.get(reverse("agents:agent-token-list", args=[agent.pk])), 200)
    assert Workspace.objects.get(pk=workspace.pk).permission_mode_id == "default"
    assert not AgentToken.objects.get(pk=token.token.pk).is_revoked()
    assert not Workspace.objects.filter(name="audit-ws").exists()


# --- Workspace creation rules (docs/concepts.md) ---------------------------------------------------------


def test_workspace_names_are_unique_per_owner(member_client, other_member_client):
    assert_status(member_client.post(reverse("agents:workspace-list"), {"name": "dev"}, format="json"), 201)
    response = member_client.post(reverse("agents:workspace-list"), {"name": "dev"}, format="json")
    assert_status(response, 400)
    assert "name" in response.json()
    assert_status(other_member_client.post(reverse("agents:workspace-list"), {"name": "dev"}, format="json"), 201)


def test_only_admins_create_workspaces_for_other_users(member_client, admin_client, other_member):
    response = member_client.post(
        reverse("agents:workspace-list"), {"name": "gift", "owner": other_member.username}, format="json"
    )
    assert_status(response, 403)

    response = admin_client.post(
        reverse("agents:workspace-list"), {"name": "gift", "owner": other_member.username}, format="json"
    )
    assert_status(response, 201)
    assert response.data["owner"] == other_member.username
    assert Workspace.objects.get(pk=response.data["id"]).owner == other_member


def test_unknown_owner_is_a_400(admin_client):
    response = admin_client.post(reverse("agents:workspace-list"), {"name": "x", "owner": "nobody-here"}, format="json")
    assert_status(response, 400)
    assert "owner" in response.json()


def test_only_admins_create_workspaces_looser_than_the_site_default(settings, member_client, admin_client):
    settings.CODERAUTH_DEFAULT_PERMISSION_MODE = "no-user-data"

    response = member_client.post(reverse("agents:workspace-list"), {"name": "plain"}, format="json")
    assert_status(response, 201)
    assert response.data["permission_mode"] == "no-user-data"

    for looser in ("default", "all"):
        response = member_client.post(
            reverse("agents:workspace-list"), {"name": f"loose-{looser}", "permission_mode": looser}, format="json"
        )
        assert_status(response, 403)

    response = admin_client.post(
        reverse("agents:workspace-list"), {"name": "loose", "permission_mode": "default"}, format="json"
    )
    assert_status(response, 201)
    assert response.data["permission_mode"] == "default"


def test_site_default_mode_is_default_for_backward_compatibility(member_client):
    response = member_client.post(reverse("agents:workspace-list"), {"name": "compat"}, format="json")
    assert_status(response, 201)
    assert response.data["permission_mode"] == "default"
