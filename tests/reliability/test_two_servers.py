"""Two app processes, one truth: a change made through one server is enforced by the other on its very next
request. Every decision (token valid, token revoked, what the mode allows) is read from the database on each
request; no process keeps its own copy."""

from __future__ import annotations

import httpx
from django.urls import reverse

from tests.helpers.factories import AgentFactory, WorkspaceFactory, mode


def _get(server, route: str, token: str, *args) -> httpx.Response:
    return httpx.get(server.url + reverse(route, args=args), headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _send(server, method: str, route: str, token: str, *args, json=None) -> httpx.Response:
    url = server.url + reverse(route, args=args)
    return httpx.request(method, url, headers={"Authorization": f"Bearer {token}"}, json=json, timeout=30)


def test_no_app_server_serves_a_stale_revocation_or_mode_decision(two_app_servers, admin, owner):
    """A revocation or a mode change made through server 1 binds server 2 on its very next request.

    Server 2 has just served each token (anything it could cache is warm) when the change lands through server 1.
    If this fails, a cache of tokens, principals, modes or decisions was added that outlives a change made by
    another process: remove it. Revocation and mode changes take effect on the next request, on every server
    (docs/architecture.md, "Concurrency")."""
    one, two = two_app_servers
    workspace = WorkspaceFactory(owner=owner.user, permission_mode=mode("default"))
    agent = AgentFactory(workspace=workspace)
    issued = _send(one, "POST", "agents:agent-token-list", owner.token, agent.pk, json={"name": "two-servers"})
    assert issued.status_code == 201, issued.text
    agent_token, token_id = issued.json()["token"], issued.json()["id"]
    child = _send(two, "POST", "agents:agent-child-token", agent_token, json={"scopes": ["agent:connect"]})
    assert child.status_code == 201, child.text
    child_token = child.json()["token"]

    for _ in range(3):
        # The mode: tightened through server 1, server 2 refuses the user-data route on its next request;
        # loosened again (by an admin), server 2 serves it again.
        for server in (two, one, two):
            assert _get(server, "agents:agent-gitsshkey", agent_token).status_code == 200
        tightened = _send(
            one, "PATCH", "agents:workspace-detail", owner.token, workspace.pk, json={"permission_mode": "no-user-data"}
        )
        assert tightened.status_code == 200, tightened.text
        refused = _get(two, "agents:agent-gitsshkey", agent_token)
        assert refused.status_code == 403, refused.text
        assert refused.json()["permission_mode"] == "no-user-data"
        loosened = _send(
            one, "PATCH", "agents:workspace-detail", admin.token, workspace.pk, json={"permission_mode": "default"}
        )
        assert loosened.status_code == 200, loosened.text

    # Revocation of an agent token (and with it its child) through server 1: server 2 refuses both next.
    for token in (agent_token, child_token):
        assert _get(two, "agents:agent-manifest", token).status_code == 200
    revoked = _send(one, "DELETE", "agents:agent-token-detail", owner.token, agent.pk, token_id)
    assert revoked.status_code == 204, revoked.text
    assert _get(two, "agents:agent-manifest", agent_token).status_code == 401
    assert _get(two, "agents:agent-manifest", child_token).status_code == 401

    # Revocation of a user token through server 1: server 2 refuses it next.
    user_token = _send(two, "POST", "agents:user-token-list", owner.token, json={"name": "two-servers"}).json()
    assert _get(two, "agents:user-me", user_token["token"]).status_code == 200
    revoked = _send(one, "DELETE", "agents:user-token-detail", owner.token, user_token["id"])
    assert revoked.status_code == 204, revoked.text
    assert _get(two, "agents:user-me", user_token["token"]).status_code == 401


def test_no_app_server_serves_a_stale_grant(two_app_servers, owner):
    """An elevation approved or revoked through server 1 binds server 2 on its very next request.

    The live grant is read by the same statement as the token on every request (agents/services/principals.py);
    a cache of principals or grants in a process would let server 2 keep serving a revoked grant, or keep refusing
    an approved one."""
    one, two = two_app_servers
    workspace = WorkspaceFactory(owner=owner.user, permission_mode=mode("default"))
    agent = AgentFactory(workspace=workspace)
    issued = _send(one, "POST", "agents:agent-token-list", owner.token, agent.pk, json={"name": "two-servers"})
    assert issued.status_code == 201, issued.text
    agent_token = issued.json()["token"]
    tightened = _send(
        one, "PATCH", "agents:workspace-detail", owner.token, workspace.pk, json={"permission_mode": "no-user-data"}
    )
    assert tightened.status_code == 200, tightened.text

    for _ in range(2):
        asked = _send(
            two,
            "POST",
            "agents:agent-access-request-list",
            agent_token,
            json={"scopes": ["agent:gitsshkey"], "reason": "a rebase needs the git key", "duration_seconds": 600},
        )
        assert asked.status_code == 201, asked.text
        request_id = asked.json()["id"]
        assert _get(two, "agents:agent-gitsshkey", agent_token).status_code == 403  # warm, and still refused

        approved = _send(
            one, "POST", "agents:access-request-approve", owner.token, request_id, json={"reason": "go ahead"}
        )
        assert approved.status_code == 200, approved.text
        served = _get(two, "agents:agent-gitsshkey", agent_token)
        assert served.status_code == 200, served.text

        revoked = _send(one, "POST", "agents:access-request-revoke", owner.token, request_id, json={"reason": "done"})
        assert revoked.status_code == 200, revoked.text
        refused = _get(two, "agents:agent-gitsshkey", agent_token)
        assert refused.status_code == 403, refused.text
        assert refused.json()["denied_by"] == "permission_mode"
