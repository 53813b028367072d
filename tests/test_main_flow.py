"""The walk-through of docs/concepts.md, step by step, through Django's test client on the literal paths it
documents (the paths are the contract). tests/test_docs.py runs the same blocks with curl against a live server."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from agents.models import AgentToken
from audit.models import AuditEvent
from tests.helpers.factories import PASSWORD, AdminFactory

pytestmark = pytest.mark.django_db

B = "/api/v2"


def _client(**headers) -> APIClient:
    client = APIClient()
    client.credentials(**headers)
    return client


def _ok(response, status: int):
    assert response.status_code == status, (response.status_code, response.content[:1000])
    return response.json() if response.content else None


def test_concepts_walk_through():
    admin = AdminFactory(username="admin")

    # 1. Log in.
    login = _ok(APIClient().post(f"{B}/users/login", {"username": "admin", "password": PASSWORD}, format="json"), 201)
    user = _client(HTTP_AUTHORIZATION=f"Bearer {login['session_token']}")
    assert _ok(user.get(f"{B}/users/me"), 200) == {"id": admin.pk, "username": "admin", "roles": ["admin"]}

    # 2. A workspace with Coder's alias, answered canonically, and an agent.
    workspace = _ok(user.post(f"{B}/workspaces", {"name": "payments", "permission_mode": "all"}, format="json"), 201)
    assert workspace["permission_mode"] == "default"
    agent = _ok(user.post(f"{B}/workspaces/{workspace['id']}/agents", {"name": "main"}, format="json"), 201)

    # 3. An agent token, shown once.
    issued = _ok(user.post(f"{B}/workspaceagents/{agent['id']}/tokens", {"name": "agent"}, format="json"), 201)
    assert issued["scopes"] == ["agent:connect", "agent:report", "agent:gitsshkey", "agent:external-auth"]
    assert issued["parent_id"] is None
    token = issued["token"]

    # 4. The agent routes, with Coder's header or a bearer token.
    manifest = _ok(_client(HTTP_CODER_SESSION_TOKEN=token).get(f"{B}/workspaceagents/me/manifest"), 200)
    assert (manifest["agent_name"], manifest["workspace_name"], manifest["owner_username"]) == (
        "main",
        "payments",
        "admin",
    )
    bearer = _client(HTTP_AUTHORIZATION=f"Bearer {token}")
    status = {"app_slug": "coder", "state": "working", "message": "Running the test suite"}
    _ok(bearer.patch(f"{B}/workspaceagents/me/app-status", status, format="json"), 200)
    key = _ok(bearer.get(f"{B}/workspaceagents/me/gitsshkey"), 200)
    assert key["public_key"].startswith("ssh-ed25519 ") and key["public_key"].endswith(" admin@coderauth")
    assert key["private_key"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")

    # 5. Switch to no-user-data with a reason.
    body = {"permission_mode": "no_user_data", "reason": "agent only reports status"}
    assert _ok(user.patch(f"{B}/workspaces/{workspace['id']}", body, format="json"), 200)["permission_mode"] == (
        "no-user-data"
    )

    # 6. The same token is refused on its very next request.
    refused = bearer.get(f"{B}/workspaceagents/me/gitsshkey")
    assert _ok(refused, 403) == {
        "detail": "The agent's permission mode 'no-user-data' does not allow 'agent:gitsshkey'.",
        "required_scope": "agent:gitsshkey",
        "permission_mode": "no-user-data",
        "denied_by": "permission_mode",
    }

    # 7. An agent token is not a user token.
    wrong_kind = bearer.get(f"{B}/users/me")
    assert _ok(wrong_kind, 401) == {
        "detail": "This route requires a user session or user token; agent tokens are not accepted here."
    }
    assert wrong_kind["WWW-Authenticate"] == 'Bearer realm="user"'

    # 8. A narrow child for a helper process.
    body = {"scopes": ["agent:report"], "lifetime_seconds": 900}
    child = _ok(bearer.post(f"{B}/workspaceagents/me/tokens", body, format="json"), 201)
    assert child["scopes"] == ["agent:report"] and child["parent_id"] == issued["id"]

    # 9. Metadata only, then revoke the parent: the child goes with it.
    listed = _ok(user.get(f"{B}/workspaceagents/{agent['id']}/tokens"), 200)["results"]
    assert {item["id"] for item in listed} == {issued["id"], child["id"]}
    assert token not in str(listed) and child["token"] not in str(listed)
    assert _ok(user.delete(f"{B}/workspaceagents/{agent['id']}/tokens/{issued['id']}"), 204) is None
    assert not AgentToken.objects.filter(revoked_at__isnull=True).exists()
    _ok(_client(HTTP_AUTHORIZATION=f"Bearer {child['token']}").get(f"{B}/workspaceagents/me/manifest"), 401)

    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    for expected in (
        "user.login",
        "agent_token.issued",
        "agent.user_data_accessed",
        "workspace.mode_changed",
        "agent.access_denied",
        "agent_token.revoked",
    ):
        assert expected in actions, (expected, actions)
    assert actions.index("workspace.mode_changed") < actions.index("agent.access_denied")
