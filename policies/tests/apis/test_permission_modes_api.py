"""Permission modes API (docs/concepts.md): everyone lists, admins manage custom modes, built-ins never change."""

from __future__ import annotations

import pytest
from django.urls import reverse

from agents.services.tokens import agent_token_issue
from audit.models import AuditEvent
from policies.models import PermissionMode
from tests.helpers.clients import client_for_agent_token
from tests.helpers.factories import AgentFactory, CustomModeFactory, WorkspaceFactory
from tests.helpers.responses import all_results, assert_status

pytestmark = pytest.mark.django_db

LIST = reverse("policies:permission-mode-list")


def detail(name: str) -> str:
    return reverse("policies:permission-mode-detail", args=[name])


@pytest.mark.parametrize("client_fixture", ["member_client", "auditor_client", "admin_client"])
def test_everyone_authenticated_lists_the_modes(request, client_fixture):
    modes = {mode["name"]: mode for mode in all_results(request.getfixturevalue(client_fixture), LIST)}
    assert modes["default"] == {
        "name": "default",
        "description": modes["default"]["description"],
        "scopes": ["agent:connect", "agent:report", "agent:gitsshkey", "agent:external-auth"],
        "builtin": True,
    }
    assert modes["no-user-data"]["scopes"] == ["agent:connect", "agent:report"]
    assert modes["no-user-data"]["builtin"] is True


def test_listing_needs_authentication(api_client):
    response = api_client.get(LIST)
    assert_status(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_agent_token_cannot_list_modes(agent_client):
    assert_status(agent_client.get(LIST), 401)


def test_admin_creates_a_custom_mode_and_it_is_audited(admin_client, admin_user):
    response = admin_client.post(
        LIST,
        {"name": "git-only", "description": "SSH but no OAuth", "scopes": ["agent:gitsshkey", "agent:connect"]},
        format="json",
    )
    assert_status(response, 201)
    assert response.data == {
        "name": "git-only",
        "description": "SSH but no OAuth",
        "scopes": ["agent:connect", "agent:gitsshkey"],
        "builtin": False,
    }
    event = AuditEvent.objects.get(action="permission_mode.created")
    assert (event.actor_type, event.actor) == ("user", admin_user.username)
    assert event.details["mode"] == "git-only"


@pytest.mark.parametrize("client_fixture", ["member_client", "auditor_client"])
def test_members_and_auditors_cannot_create_modes(request, client_fixture):
    response = request.getfixturevalue(client_fixture).post(
        LIST, {"name": "sneaky", "scopes": ["agent:connect"]}, format="json"
    )
    assert_status(response, 403)
    assert not PermissionMode.objects.filter(name="sneaky").exists()


@pytest.mark.parametrize(
    "body",
    [
        {"name": "bad", "scopes": ["agent:everything"]},
        {"name": "bad", "scopes": "agent:connect"},
        {"name": "Bad Name", "scopes": ["agent:connect"]},
        {"name": "default", "scopes": ["agent:connect"]},
        {"name": "all", "scopes": ["agent:connect"]},
        {"name": "no_user_data", "scopes": ["agent:connect"]},
        {"scopes": ["agent:connect"]},
    ],
)
def test_invalid_modes_are_a_400(admin_client, body):
    response = admin_client.post(LIST, body, format="json")
    assert_status(response, 400)
    assert response.json()["detail"]


def test_duplicate_custom_mode_is_a_400(admin_client):
    CustomModeFactory()
    response = admin_client.post(LIST, {"name": "git-only", "scopes": ["agent:connect"]}, format="json")
    assert_status(response, 400)
    assert "name" in response.json()


@pytest.mark.parametrize("name", ["default", "no-user-data", "all", "no_user_data"])
def test_builtins_cannot_be_changed_or_deleted_even_by_admins(admin_client, name):
    """The built-ins are the compatibility contract with Coder: `default` must always mean everything."""
    assert_status(admin_client.patch(detail(name), {"scopes": ["agent:connect"]}, format="json"), 403)
    assert_status(admin_client.delete(detail(name)), 403)
    assert PermissionMode.objects.get(name="default").scopes == [
        "agent:connect",
        "agent:report",
        "agent:gitsshkey",
        "agent:external-auth",
    ]
    assert PermissionMode.objects.get(name="no-user-data").scopes == ["agent:connect", "agent:report"]


def test_admin_updates_a_custom_mode_and_existing_tokens_feel_it(admin_client, member):
    """Editing a custom mode is a mode change for every agent in it, on their next request."""
    CustomModeFactory()
    workspace = WorkspaceFactory(owner=member, permission_mode=PermissionMode.objects.get(name="git-only"))
    agent = AgentFactory(workspace=workspace)
    client = client_for_agent_token(agent_token_issue(actor=member, agent=agent).plaintext)
    assert_status(client.get(reverse("agents:agent-gitsshkey")), 200)

    response = admin_client.patch(detail("git-only"), {"scopes": ["agent:connect", "agent:report"]}, format="json")

    assert_status(response, 200)
    assert response.data["scopes"] == ["agent:connect", "agent:report"]
    assert_status(client.get(reverse("agents:agent-gitsshkey")), 403)
    event = AuditEvent.objects.get(action="permission_mode.updated")
    assert event.details["from"]["scopes"] == ["agent:connect", "agent:report", "agent:gitsshkey"]


@pytest.mark.parametrize("client_fixture", ["member_client", "auditor_client"])
def test_members_and_auditors_cannot_change_or_delete_custom_modes(request, client_fixture):
    CustomModeFactory()
    client = request.getfixturevalue(client_fixture)
    assert_status(client.patch(detail("git-only"), {"scopes": ["agent:connect"]}, format="json"), 403)
    assert_status(client.delete(detail("git-only")), 403)
    assert PermissionMode.objects.filter(name="git-only").exists()


def test_mode_in_use_cannot_be_deleted(admin_client, member):
    CustomModeFactory()
    workspace = WorkspaceFactory(owner=member, permission_mode=PermissionMode.objects.get(name="git-only"))

    response = admin_client.delete(detail("git-only"))

    assert_status(response, 400)
    assert PermissionMode.objects.filter(name="git-only").exists()
    workspace.permission_mode = PermissionMode.objects.get(name="default")
    workspace.save()
    AgentFactory(workspace=workspace, permission_mode=PermissionMode.objects.get(name="git-only"))
    assert_status(admin_client.delete(detail("git-only")), 400)


def test_unused_custom_mode_is_deleted_and_audited(admin_client):
    CustomModeFactory()
    assert_status(admin_client.delete(detail("git-only")), 204)
    assert not PermissionMode.objects.filter(name="git-only").exists()
    assert AuditEvent.objects.filter(action="permission_mode.deleted", details__mode="git-only").exists()


def test_unknown_mode_is_a_404(admin_client):
    assert_status(admin_client.get(detail("nope")), 404)
    assert_status(admin_client.patch(detail("nope"), {"scopes": []}, format="json"), 404)
    assert_status(admin_client.delete(detail("nope")), 404)


def test_mode_detail_accepts_aliases(member_client):
    response = member_client.get(detail("all"))
    assert_status(response, 200)
    assert response.data["name"] == "default"
