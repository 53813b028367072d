"""End to end: the opt-in user token, and start-up failures."""

from __future__ import annotations

import pytest

from agents.services.tokens import agent_token_issue, agent_token_revoke
from agents.services.users import user_token_issue
from coderauth.mcp.server import EXIT_CONFIG
from tests.helpers.factories import AgentFactory, UserFactory, WorkspaceFactory
from tests.mcp_server.harness import run_server_process, run_session, server_env, structured, text_of, tool_names

ALL_TOOLS = [
    "coder_get_access_request",
    "coder_get_agent",
    "coder_get_authenticated_user",
    "coder_get_workspace",
    "coder_list_workspaces",
    "coder_report_task",
    "coder_request_access",
]


@pytest.fixture
def owner(transactional_db):
    return UserFactory()


@pytest.fixture
def agent_token(owner):
    agent = AgentFactory(workspace=WorkspaceFactory(owner=owner, name="main"))
    return agent_token_issue(actor=owner, agent=agent, name="workspace agent")


def test_user_token_adds_user_tools_that_return_the_users_workspaces(live_server, owner, agent_token, tmp_path):
    second = WorkspaceFactory(owner=owner, name="side-project")
    WorkspaceFactory(owner=UserFactory(), name="not-mine")
    user_token = user_token_issue(user=owner, name="mcp").plaintext
    env = server_env(CODER_URL=live_server.url, CODER_AGENT_TOKEN=agent_token.plaintext, CODER_SESSION_TOKEN=user_token)

    async def scenario(session):
        names = tool_names(await session.list_tools())
        me = await session.call_tool("coder_get_authenticated_user", {})
        listing = await session.call_tool("coder_list_workspaces", {})
        by_name = await session.call_tool("coder_get_workspace", {"workspace": "side-project"})
        by_id = await session.call_tool("coder_get_workspace", {"workspace": str(second.id)})
        missing = await session.call_tool("coder_get_workspace", {"workspace": "not-mine"})
        return names, me, listing, by_name, by_id, missing

    names, me, listing, by_name, by_id, missing = run_session(env, scenario, errlog_path=tmp_path / "stderr.log")
    assert names == ALL_TOOLS
    assert structured(me)["username"] == owner.username
    assert sorted(item["name"] for item in structured(listing)["workspaces"]) == ["main", "side-project"]
    assert structured(by_name)["id"] == str(second.id)
    assert structured(by_id)["name"] == "side-project"
    assert missing.isError, "another user's workspace must not be found"
    log = (tmp_path / "stderr.log").read_text()
    assert user_token not in log and agent_token.plaintext not in log


def test_user_tool_called_by_name_without_user_token_is_refused(live_server, agent_token, tmp_path):
    """Hiding a tool is not authorisation: a call by name without CODER_SESSION_TOKEN is an error."""
    env = server_env(CODER_URL=live_server.url, CODER_AGENT_TOKEN=agent_token.plaintext)

    async def scenario(session):
        user_tools = ["coder_get_authenticated_user", "coder_list_workspaces", "coder_get_workspace"]
        return [await session.call_tool(name, {"workspace": "main"}) for name in user_tools]

    results = run_session(env, scenario, errlog_path=tmp_path / "stderr.log")
    assert len(results) == 3
    assert all(result.isError and "Unknown tool" in text_of(result) for result in results)


def test_allowed_tools_filter_applies_to_user_tools(live_server, owner, agent_token, tmp_path):
    user_token = user_token_issue(user=owner, name="mcp").plaintext
    env = server_env(
        CODER_URL=live_server.url,
        CODER_AGENT_TOKEN=agent_token.plaintext,
        CODER_SESSION_TOKEN=user_token,
        CODER_MCP_ALLOWED_TOOLS="coder_report_task, coder_list_workspaces",
    )

    async def scenario(session):
        names = tool_names(await session.list_tools())
        refused = await session.call_tool("coder_get_authenticated_user", {})
        return names, refused

    names, refused = run_session(env, scenario, errlog_path=tmp_path / "stderr.log")
    assert names == ["coder_list_workspaces", "coder_report_task"]
    assert refused.isError


def test_no_agent_token_exits_non_zero_naming_it(tmp_path):
    result = run_server_process(server_env(CODER_URL="http://127.0.0.1:9"))
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "coderauth-mcp: CODER_AGENT_TOKEN is missing (set CODER_AGENT_TOKEN or CODER_AGENT_TOKEN_FILE)"
    ]


def test_agent_token_on_the_command_line_is_refused_before_any_request():
    """A command line is visible to every process in the workspace (ps, /proc/<pid>/cmdline): refused."""
    result = run_server_process(server_env(CODER_URL="http://127.0.0.1:9"), "--agent-token", "cda_" + "A" * 36)
    assert result.returncode == EXIT_CONFIG
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("coderauth-mcp: --agent-token is refused"), result.stderr
    assert "A" * 36 not in result.stderr


def test_missing_token_file_exits_non_zero_naming_it(tmp_path):
    result = run_server_process(
        server_env(CODER_URL="http://127.0.0.1:9", CODER_AGENT_TOKEN_FILE=str(tmp_path / "absent"))
    )
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1
    assert "CODER_AGENT_TOKEN_FILE" in result.stderr and "cannot be read" in result.stderr


@pytest.mark.parametrize(
    ("env_slug", "args", "named"),
    [("Claude Code", (), "CODER_MCP_APP_STATUS_SLUG"), ("", ("--app-status-slug", "claude.code"), "--app-status-slug")],
    ids=["env", "flag"],
)
def test_bad_app_status_slug_exits_with_the_config_error_code_naming_it(env_slug, args, named):
    """Checked before any request (the URL is a closed port): otherwise every coder_report_task would fail."""
    env = server_env(CODER_URL="http://127.0.0.1:9", CODER_AGENT_TOKEN="cda_x", CODER_MCP_APP_STATUS_SLUG=env_slug)
    result = run_server_process(env, *args)
    assert result.returncode == EXIT_CONFIG
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"coderauth-mcp: {named} ") and "is not a valid app slug" in lines[0]


def test_rejected_agent_token_exits_non_zero_naming_it(live_server, owner, agent_token):
    """A revoked agent token stops start-up with one line that names the token and the server's answer."""
    agent_token_revoke(actor=owner, token=agent_token.token)
    result = run_server_process(server_env(CODER_URL=live_server.url, CODER_AGENT_TOKEN=agent_token.plaintext))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("coderauth-mcp: CODER_AGENT_TOKEN (cda_…")
    assert f"was rejected by {live_server.url}: 401" in lines[0]
    assert agent_token.plaintext not in result.stderr


def test_rejected_user_token_exits_non_zero_naming_it(live_server, agent_token):
    bad_user_token = "cdu_" + "A" * 36
    env = server_env(
        CODER_URL=live_server.url, CODER_AGENT_TOKEN=agent_token.plaintext, CODER_SESSION_TOKEN=bad_user_token
    )
    result = run_server_process(env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("coderauth-mcp: CODER_SESSION_TOKEN (cdu_…")
    assert "was rejected" in lines[0] and ": 401" in lines[0]
    assert bad_user_token not in result.stderr


def test_agent_token_given_as_user_token_is_rejected(live_server, agent_token):
    """The two flows stay separate: an agent token in CODER_SESSION_TOKEN does not pass as a user token."""
    env = server_env(
        CODER_URL=live_server.url, CODER_AGENT_TOKEN=agent_token.plaintext, CODER_SESSION_TOKEN=agent_token.plaintext
    )
    result = run_server_process(env)
    assert result.returncode != 0
    assert "CODER_SESSION_TOKEN" in result.stderr and "rejected" in result.stderr
