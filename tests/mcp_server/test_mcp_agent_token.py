"""End to end: the MCP server against a live coderauth, with the agent token alone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import timedelta

import pytest
from django.urls import reverse

from agents.models import AgentToken
from agents.services.tokens import agent_token_issue, agent_token_revoke
from agents.services.workspaces import agent_mode_set
from audit.models import AuditEvent
from policies.services import permission_mode_create
from tests.helpers.clients import client_for_user
from tests.helpers.factories import AdminFactory, AgentFactory, UserFactory, WorkspaceFactory, mode
from tests.mcp_server.harness import (
    REPO_ROOT,
    START_TIMEOUT_SECONDS,
    in_db,
    run_session,
    server_env,
    structured,
    text_of,
    tool_names,
)

AGENT_TOOLS = ["coder_get_access_request", "coder_get_agent", "coder_report_task", "coder_request_access"]
MCP_SCOPES = ["agent:connect", "agent:report"]


@pytest.fixture
def owner(transactional_db):
    return UserFactory()


def agent_with_token(owner, mode_name: str = "default"):
    workspace = WorkspaceFactory(owner=owner, permission_mode=mode(mode_name))
    agent = AgentFactory(workspace=workspace)
    issued = agent_token_issue(actor=owner, agent=agent, name="workspace agent")
    return agent, issued


def latest_status(owner, agent) -> dict:
    response = client_for_user(owner).get(reverse("agents:agent-detail", args=[agent.id]))
    assert response.status_code == 200, response.content
    return response.json()["app_statuses"]


def report(summary: str, state: str = "working", link: str = "") -> dict:
    return {"summary": summary, "state": state, "link": link}


def test_agent_token_alone_lists_agent_tools_and_reports_status(live_server, owner, tmp_path):
    """With only CODER_AGENT_TOKEN the server lists exactly the agent tools; a report becomes the agent's status."""
    agent, issued = agent_with_token(owner)
    env = server_env(CODER_URL=live_server.url, CODER_AGENT_TOKEN=issued.plaintext)

    async def scenario(session):
        names = tool_names(await session.list_tools())
        sent = await session.call_tool(
            "coder_report_task", report("Refactoring the login form", link="https://example.com/pr/1")
        )
        manifest = await session.call_tool("coder_get_agent", {})
        return names, sent, manifest

    names, sent, manifest = run_session(env, scenario, errlog_path=tmp_path / "stderr.log")
    assert names == AGENT_TOOLS
    assert structured(sent)["reported"] is True
    body = structured(manifest)
    assert (body["agent_id"], body["permission_mode"], body["can_report"]) == (str(agent.id), "default", True)
    assert body["scopes"] == MCP_SCOPES, "the child token holds connect and report only"

    latest = latest_status(owner, agent)[0]
    assert (latest["app_slug"], latest["message"], latest["uri"], latest["state"]) == (
        "coder",
        "Refactoring the login form",
        "https://example.com/pr/1",
        "working",
    )


def test_no_user_data_mode_works_the_same(live_server, owner, tmp_path):
    """An agent in no-user-data mode has everything the MCP server needs."""
    agent, issued = agent_with_token(owner, "no-user-data")
    env = server_env(CODER_URL=live_server.url, CODER_AGENT_TOKEN=issued.plaintext, CODER_MCP_APP_STATUS_SLUG="claude")

    async def scenario(session):
        names = tool_names(await session.list_tools())
        sent = await session.call_tool("coder_report_task", report("Waiting for review", state="idle"))
        manifest = await session.call_tool("coder_get_agent", {})
        return names, sent, manifest

    names, sent, manifest = run_session(env, scenario, errlog_path=tmp_path / "stderr.log")
    assert names == AGENT_TOOLS
    assert structured(sent)["reported"] is True
    assert structured(manifest)["permission_mode"] == "no-user-data"
    latest = latest_status(owner, agent)[0]
    assert (latest["app_slug"], latest["message"], latest["state"]) == ("claude", "Waiting for review", "idle")


def test_only_a_narrow_child_token_is_used_after_start_up(live_server, owner, tmp_path, settings):
    """Least privilege: the audit shows the children issued by the agent with connect+report only; after start-up
    the parent's last_used_at never moves (every use would be written), the child's does; a clean exit revokes the
    children and leaves the parent alone; no token reaches stderr."""
    settings.CODERAUTH_LAST_USED_RESOLUTION = timedelta(0)
    agent, issued = agent_with_token(owner)
    parent = issued.token
    env = server_env(CODER_URL=live_server.url, CODER_AGENT_TOKEN=issued.plaintext)

    async def scenario(session):
        after_start = await in_db(lambda: AgentToken.objects.get(pk=parent.pk).last_used_at)
        await session.call_tool("coder_get_agent", {})
        await session.call_tool("coder_report_task", report("Step one"))
        await session.call_tool("coder_report_task", report("Step two"))
        await session.call_tool("coder_get_agent", {})
        after_calls = await in_db(lambda: AgentToken.objects.get(pk=parent.pk).last_used_at)
        children = await in_db(lambda: list(AgentToken.objects.filter(agent=agent).exclude(pk=parent.pk)))
        return after_start, after_calls, children

    after_start, after_calls, children = run_session(env, scenario, errlog_path=tmp_path / "stderr.log")
    assert after_start is not None, "start-up used the parent"
    assert after_calls == after_start, "the parent token was used after start-up"
    assert children and all(sorted(child.scopes) == MCP_SCOPES for child in children)
    assert any(child.last_used_at and child.last_used_at > after_start for child in children), "no child did the work"

    issued_events = AuditEvent.objects.filter(action="agent_token.issued", agent_id=agent.id, actor_type="agent")
    assert {event.details["token_id"] for event in issued_events} == {str(child.id) for child in children}
    assert all(event.details["scopes"] == MCP_SCOPES for event in issued_events)

    assert all(token.revoked_at is not None for token in AgentToken.objects.filter(pk__in=[c.pk for c in children]))
    assert AgentToken.objects.get(pk=parent.pk).revoked_at is None
    assert AuditEvent.objects.filter(action="agent_token.revoked", agent_id=agent.id, actor_type="agent").exists()

    log = (tmp_path / "stderr.log").read_text()
    assert "ready" in log
    assert issued.plaintext not in log
    assert "cda_" not in log.replace("cda_…", ""), "a token reached the log"


def test_start_up_prints_exactly_one_line_to_stderr(live_server, owner, tmp_path):
    """The README promises one "ready" line once the server answers: no other line, and no token, not even a hint."""
    agent, issued = agent_with_token(owner)
    env = server_env(CODER_URL=live_server.url, CODER_AGENT_TOKEN=issued.plaintext)
    errlog_path = tmp_path / "stderr.log"

    async def scenario(session):
        await session.list_tools()
        return errlog_path.read_text()

    at_start = run_session(env, scenario, errlog_path=errlog_path)
    assert at_start.splitlines() == [
        f"coderauth-mcp INFO: ready: agent {agent.name} of workspace {agent.workspace.name} (mode default), "
        "child token scopes agent:connect, agent:report, "
        "tools coder_report_task, coder_get_agent, coder_request_access, coder_get_access_request"
    ]


def test_identical_consecutive_report_is_not_sent_twice(live_server, owner, tmp_path):
    agent, issued = agent_with_token(owner)
    env = server_env(CODER_URL=live_server.url, CODER_AGENT_TOKEN=issued.plaintext)

    async def scenario(session):
        first = await session.call_tool("coder_report_task", report("Same thing"))
        second = await session.call_tool("coder_report_task", report("Same thing"))
        third = await session.call_tool("coder_report_task", report("Same thing", state="complete"))
        return first, second, third

    first, second, third = run_session(env, scenario, errlog_path=tmp_path / "stderr.log")
    assert structured(first)["reported"] is True
    assert structured(second)["reported"] is False
    assert "unchanged" in structured(second)["note"].lower()
    assert structured(third)["reported"] is True
    assert [status["state"] for status in latest_status(owner, agent)] == ["complete", "working"]


def test_summary_longer_than_160_characters_is_a_tool_error(live_server, owner, tmp_path):
    agent, issued = agent_with_token(owner)
    env = server_env(CODER_URL=live_server.url, CODER_AGENT_TOKEN=issued.plaintext)

    async def scenario(session):
        too_long = await session.call_tool("coder_report_task", report("x" * 161))
        at_limit = await session.call_tool("coder_report_task", report("y" * 160))
        return too_long, at_limit

    too_long, at_limit = run_session(env, scenario, errlog_path=tmp_path / "stderr.log")
    assert too_long.isError
    assert "161 characters" in text_of(too_long) and "160" in text_of(too_long)
    assert structured(at_limit)["reported"] is True
    assert [status["message"] for status in latest_status(owner, agent)] == ["y" * 160]


def test_mode_change_mid_session_gives_a_tool_error_not_a_crash(live_server, owner, tmp_path):
    """A mode without agent:report, set while the server runs, makes coder_report_task a readable tool error; the
    server keeps answering, and reporting works again once it has seen the mode allow it (coder_get_agent reads
    the manifest at once; a refused report re-reads it at most once per MANIFEST_RECHECK_SECONDS)."""
    agent, issued = agent_with_token(owner)
    admin = AdminFactory()
    env = server_env(CODER_URL=live_server.url, CODER_AGENT_TOKEN=issued.plaintext)

    def narrow():
        connect_only = permission_mode_create(
            actor=admin, name="connect-only", description="Connect only.", scopes=["agent:connect"]
        )
        agent_mode_set(actor=admin, agent=agent, permission_mode=connect_only, reason="test")

    def restore():
        agent_mode_set(actor=admin, agent=agent, permission_mode=None, reason="test")

    async def scenario(session):
        before = await session.call_tool("coder_report_task", report("Before the change"))
        await in_db(narrow)
        refused = await session.call_tool("coder_report_task", report("After the change"))
        manifest = await session.call_tool("coder_get_agent", {})
        await in_db(restore)
        await session.call_tool("coder_get_agent", {})
        again = await session.call_tool("coder_report_task", report("Mode restored"))
        return before, refused, manifest, again

    before, refused, manifest, again = run_session(env, scenario, errlog_path=tmp_path / "stderr.log")
    assert structured(before)["reported"] is True
    assert refused.isError
    assert "403" in text_of(refused) and "agent:report" in text_of(refused) and "connect-only" in text_of(refused)
    body = structured(manifest)
    assert (body["permission_mode"], body["can_report"]) == ("connect-only", False)
    assert structured(again)["reported"] is True
    assert [status["message"] for status in latest_status(owner, agent)] == ["Mode restored", "Before the change"]


def test_report_in_a_mode_without_agent_report_sends_nothing(live_server, owner, tmp_path):
    """No amplification: when the mode lacked agent:report at start-up, coder_report_task is refused by the
    server itself, each call costing no request, so no audit row, no mint, no revoke, no retry."""
    admin = AdminFactory()
    connect_only = permission_mode_create(
        actor=admin, name="connect-only", description="Connect only.", scopes=["agent:connect"]
    )
    workspace = WorkspaceFactory(owner=owner, permission_mode=connect_only)
    agent = AgentFactory(workspace=workspace)
    issued = agent_token_issue(actor=owner, agent=agent, name="workspace agent")
    env = server_env(CODER_URL=live_server.url, CODER_AGENT_TOKEN=issued.plaintext)

    def snapshot():
        return AuditEvent.objects.filter(agent_id=agent.id).count(), AgentToken.objects.filter(agent=agent).count()

    async def scenario(session):
        before = await in_db(snapshot)
        refused = [await session.call_tool("coder_report_task", report(f"Step {n}")) for n in range(3)]
        return before, refused, await in_db(snapshot)

    before, refused, after = run_session(env, scenario, errlog_path=tmp_path / "stderr.log")
    assert all(result.isError for result in refused)
    assert "did not allow agent:report when the MCP server started" in text_of(refused[0])
    assert after == before, "a refused report reached coderauth"


def test_report_after_a_mid_session_denial_is_refused_without_amplification(live_server, owner, tmp_path):
    """After the mode drops agent:report mid-session, the first report is denied upstream (one audited denial);
    the next ones are refused by the server itself within MANIFEST_RECHECK_SECONDS: no new audit rows."""
    agent, issued = agent_with_token(owner)
    admin = AdminFactory()
    env = server_env(CODER_URL=live_server.url, CODER_AGENT_TOKEN=issued.plaintext)

    def narrow():
        connect_only = permission_mode_create(
            actor=admin, name="connect-only", description="Connect only.", scopes=["agent:connect"]
        )
        agent_mode_set(actor=admin, agent=agent, permission_mode=connect_only, reason="test")

    def audit_rows():
        return list(AuditEvent.objects.filter(agent_id=agent.id).values_list("action", flat=True).order_by("id"))

    async def scenario(session):
        await session.call_tool("coder_report_task", report("Before the change"))
        await in_db(narrow)
        before = await in_db(audit_rows)
        denied = await session.call_tool("coder_report_task", report("Denied upstream"))
        after_denial = await in_db(audit_rows)
        refused = [await session.call_tool("coder_report_task", report(f"Refused {n}")) for n in range(3)]
        return before, denied, after_denial, refused, await in_db(audit_rows)

    before, denied, after_denial, refused, after = run_session(env, scenario, errlog_path=tmp_path / "stderr.log")
    assert denied.isError and "403" in text_of(denied)
    assert after_denial[len(before) :] == ["agent.access_denied"]
    assert all(result.isError and "does not allow agent:report now" in text_of(result) for result in refused)
    assert after == after_denial


def test_renewal_rotates_the_renewal_token(live_server, owner, tmp_path):
    """A renewal (forced here by revoking the working token) first rotates the renewal token: coderauth audits
    agent_token.rotated, the old renewal token is revoked and points to its successor, and the call succeeds."""
    agent, issued = agent_with_token(owner)
    env = server_env(CODER_URL=live_server.url, CODER_AGENT_TOKEN=issued.plaintext)

    def revoke_working():
        working = AgentToken.objects.get(agent=agent, name="coderauth-mcp", revoked_at__isnull=True)
        agent_token_revoke(actor=owner, token=working)
        return AgentToken.objects.get(agent=agent, name="coderauth-mcp renewal", revoked_at__isnull=True).pk

    async def scenario(session):
        await session.call_tool("coder_get_agent", {})
        first_renewal = await in_db(revoke_working)
        renewed = await session.call_tool("coder_report_task", report("After the renewal"))
        live = await in_db(lambda: list(AgentToken.objects.filter(agent=agent, revoked_at__isnull=True)))
        return first_renewal, renewed, live

    first_renewal, renewed, live = run_session(env, scenario, errlog_path=tmp_path / "stderr.log")
    assert structured(renewed)["reported"] is True
    old = AgentToken.objects.get(pk=first_renewal)
    assert old.revoked_at is not None and old.rotated_to is not None
    assert sorted(token.name for token in live) == ["coderauth-mcp", "coderauth-mcp renewal", "workspace agent"]
    successor = next(token for token in live if token.name == "coderauth-mcp renewal")
    assert successor.pk == old.rotated_to_id
    assert AuditEvent.objects.filter(action="agent_token.rotated", agent_id=agent.id).count() == 1
    assert not AuditEvent.objects.filter(action="agent_token.reuse_detected", agent_id=agent.id).exists()


def test_allowed_tools_filter_restricts_listing_and_calls(live_server, owner, tmp_path):
    agent, issued = agent_with_token(owner)
    env = server_env(
        CODER_URL=live_server.url, CODER_AGENT_TOKEN=issued.plaintext, CODER_MCP_ALLOWED_TOOLS="coder_get_agent"
    )

    async def scenario(session):
        names = tool_names(await session.list_tools())
        refused = await session.call_tool("coder_report_task", report("Not allowed"))
        return names, refused

    names, refused = run_session(env, scenario, errlog_path=tmp_path / "stderr.log")
    assert names == ["coder_get_agent"]
    assert refused.isError
    assert latest_status(owner, agent) == []


def test_agent_token_from_file(live_server, owner, tmp_path):
    agent, issued = agent_with_token(owner)
    token_file = tmp_path / "agent-token"
    token_file.write_text(issued.plaintext + "\n")
    env = server_env(CODER_URL=live_server.url, CODER_AGENT_TOKEN_FILE=str(token_file))

    async def scenario(session):
        return await session.call_tool("coder_get_agent", {})

    manifest = run_session(env, scenario, errlog_path=tmp_path / "stderr.log")
    assert structured(manifest)["agent_id"] == str(agent.id)


def test_sigterm_revokes_the_child_tokens_and_stdout_is_protocol_only(live_server, owner, tmp_path):
    """SIGTERM is a clean exit: the children are revoked. stdout carries JSON-RPC lines and nothing else."""
    agent, issued = agent_with_token(owner)
    env = {"PATH": os.environ["PATH"], **server_env(CODER_URL=live_server.url, CODER_AGENT_TOKEN=issued.plaintext)}
    process = subprocess.Popen(
        [sys.executable, "-m", "coderauth.mcp"],
        env=env,
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        initialize = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "test", "version": "1"},
            },
        }
        process.stdin.write(json.dumps(initialize) + "\n")
        process.stdin.flush()
        answer = json.loads(process.stdout.readline())
        assert answer["id"] == 1 and answer["result"]["serverInfo"]["name"] == "coderauth"
        process.send_signal(signal.SIGTERM)
        remaining_stdout, stderr = process.communicate(timeout=START_TIMEOUT_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert remaining_stdout == ""
    children = AgentToken.objects.filter(agent=agent).exclude(pk=issued.token.pk)
    assert children.count() == 2
    assert all(child.revoked_at is not None for child in children)
    assert issued.plaintext not in stderr
