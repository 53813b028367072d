"""End to end: an assistant asks for a scope through the MCP server, a person decides, the assistant follows the
request to its decision. A live coderauth, the MCP server in its own process, the agent token alone."""

from __future__ import annotations

import pytest
from django.urls import reverse

from agents.models import AccessRequest
from agents.services.tokens import agent_token_issue
from agents.services.workspaces import agent_mode_set
from audit.models import AuditEvent
from tests.helpers.clients import client_for_user
from tests.helpers.factories import AdminFactory, AgentFactory, UserFactory, WorkspaceFactory, mode
from tests.mcp_server.harness import in_db, run_session, server_env, structured, text_of, tool_names

GIT_KEY = "agent:gitsshkey"


@pytest.fixture
def owner(transactional_db):
    return UserFactory()


def narrowed_agent(owner):
    """A root token issued while the mode allowed the git SSH key, then a mode without it: the key is what an
    assistant may ask for."""
    agent = AgentFactory(workspace=WorkspaceFactory(owner=owner, permission_mode=mode("default")))
    issued = agent_token_issue(actor=owner, agent=agent, name="workspace agent")
    agent_mode_set(actor=AdminFactory(), agent=agent, permission_mode=mode("no-user-data"), reason="test")
    return agent, issued


def ask(reason: str = "Push the fix branch to origin", duration_minutes: int = 10) -> dict:
    return {"scopes": [GIT_KEY], "reason": reason, "duration_minutes": duration_minutes}


def test_request_pending_then_approved_with_time_left(live_server, owner, tmp_path):
    """request → pending (a second ask names the open one, nothing new stored) → an admin approves through the API
    → the next read is approved with its time left; the MCP server's own tokens still lack the scope."""
    agent, issued = narrowed_agent(owner)
    admin = AdminFactory()
    env = server_env(CODER_URL=live_server.url, CODER_AGENT_TOKEN=issued.plaintext)

    def approve(request_id: str) -> int:
        response = client_for_user(admin).post(
            reverse("agents:access-request-approve", args=[request_id]),
            {"reason": "Needed for the release", "duration_seconds": 300},
            format="json",
        )
        return response.status_code

    async def scenario(session):
        asked = structured(await session.call_tool("coder_request_access", ask()))
        again = structured(await session.call_tool("coder_request_access", ask("Once more")))
        pending = structured(await session.call_tool("coder_get_access_request", {"id": asked["id"]}))
        approved_status = await in_db(lambda: approve(asked["id"]))
        approved = structured(await session.call_tool("coder_get_access_request", {"id": asked["id"]}))
        manifest = structured(await session.call_tool("coder_get_agent", {}))
        return asked, again, pending, approved_status, approved, manifest

    asked, again, pending, approved_status, approved, manifest = run_session(
        env, scenario, errlog_path=tmp_path / "stderr.log"
    )
    assert (asked["created"], asked["state"], asked["scopes"]) == (True, "pending", [GIT_KEY])
    assert "Access requests page" in asked["note"] and asked["poll_after_seconds"] >= 10
    assert (again["created"], again["id"], again["state"]) == (False, asked["id"], "open")
    assert pending["state"] == "pending" and pending["expires_at"] is None
    assert approved_status == 200
    assert approved["state"] == "approved" and approved["expires_at"]
    assert 0 < approved["time_left_seconds"] <= 300, "approval shortened the ten minutes asked to five"
    assert approved["note"].startswith(f"Approved: the agent may use {GIT_KEY}")

    stored = AccessRequest.objects.get(agent=agent)
    assert (str(stored.id), stored.duration_seconds, stored.reason) == (asked["id"], 600, ask()["reason"])
    assert AccessRequest.objects.filter(agent=agent).count() == 1, "the second ask stored nothing"
    assert stored.token.parent_id is not None, "asked with the MCP server's narrow token, not the parent"
    assert GIT_KEY not in manifest["scopes"], "the MCP server's own token never carries the granted scope"
    assert AuditEvent.objects.filter(action="access_request.created", agent_id=agent.id).count() == 1
    assert issued.plaintext not in (tmp_path / "stderr.log").read_text()


def test_denied_request_tells_the_assistant_to_stop(live_server, owner, tmp_path):
    agent, issued = narrowed_agent(owner)
    admin = AdminFactory()
    env = server_env(CODER_URL=live_server.url, CODER_AGENT_TOKEN=issued.plaintext)

    def deny(request_id: str) -> int:
        url = reverse("agents:access-request-deny", args=[request_id])
        return client_for_user(admin).post(url, {"reason": "Use the staging key"}, format="json").status_code

    async def scenario(session):
        asked = structured(await session.call_tool("coder_request_access", ask()))
        denied_status = await in_db(lambda: deny(asked["id"]))
        denied = structured(await session.call_tool("coder_get_access_request", {"id": asked["id"]}))
        refused = await session.call_tool("coder_request_access", {**ask(), "scopes": ["agent:report"]})
        return denied_status, denied, refused

    denied_status, denied, refused = run_session(env, scenario, errlog_path=tmp_path / "stderr.log")
    assert denied_status == 200
    assert denied["state"] == "denied" and denied["note"].startswith("Denied: Use the staging key. Stop waiting")
    assert refused.isError and "400" in text_of(refused) and "Already allowed" in text_of(refused)


def test_allowed_tools_hide_the_elevation_tools_and_calls_are_refused(live_server, owner, tmp_path):
    agent, issued = narrowed_agent(owner)
    env = server_env(
        CODER_URL=live_server.url,
        CODER_AGENT_TOKEN=issued.plaintext,
        CODER_MCP_ALLOWED_TOOLS="coder_report_task,coder_get_agent",
    )

    async def scenario(session):
        names = tool_names(await session.list_tools())
        refused = await session.call_tool("coder_request_access", ask())
        return names, refused

    names, refused = run_session(env, scenario, errlog_path=tmp_path / "stderr.log")
    assert names == ["coder_get_agent", "coder_report_task"]
    assert refused.isError
    assert not AccessRequest.objects.filter(agent=agent).exists()
