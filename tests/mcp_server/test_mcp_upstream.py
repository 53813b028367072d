"""Nothing upstream is trusted: answers of the wrong shape, too large or too slow, from a real HTTP server on
loopback, become short tool errors or one start-up line, and no child token is left live behind them."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from mcp.server.fastmcp.exceptions import ToolError

from coderauth.mcp import client as client_module
from coderauth.mcp import server as server_module
from coderauth.mcp.client import AgentCredentials, CoderClient
from coderauth.mcp.config import Config
from coderauth.mcp.server import CoderTools
from tests.mcp_server.harness import run_server_process, server_env
from tests.mcp_server.upstream import (
    MANIFEST,
    TOKENS,
    Upstream,
    agent_token,
    child_body,
    in_turn,
    send_huge,
    send_json,
    send_raw,
    send_trickle,
)

APP_STATUS = ("PATCH", "/api/v2/workspaceagents/me/app-status")
WORKSPACES = ("GET", "/api/v2/workspaces")
PARENT = agent_token()
USER_TOKEN = "cdu_" + "U" * 36


@pytest.fixture
def upstream():
    with Upstream() as running:
        yield running


def tools_against(upstream: Upstream, **config) -> CoderTools:
    """A started server's tools: renewal and working token minted from the loopback upstream."""
    credentials = AgentCredentials(CoderClient(upstream.url))

    async def start():
        await credentials.read_manifest(parent_token=PARENT)
        await credentials.mint_renewal(parent_token=PARENT)
        await credentials.start_working()

    asyncio.run(start())
    settings = Config(url=upstream.url, agent_token_source="CODER_AGENT_TOKEN", **config)
    return CoderTools(config=settings, credentials=credentials, user=None)


def report(tools: CoderTools) -> dict:
    return asyncio.run(tools.report_task(summary="Building", link="", state="working"))


def workspace(name: str, owner: str = "owner") -> dict:
    return {"id": str(uuid.uuid4()), "name": name, "owner": owner, "agents": []}


class TestShape:
    @pytest.mark.parametrize(
        ("answer", "message"),
        [
            (send_json(200, [{"app_slug": "coder"}]), "expected a JSON object, got a list"),
            (send_raw(200, b"<html>OK</html>"), "the answer is not JSON"),
            (send_json(200, {"app_slug": "coder"}), "'state' is missing or not a string"),
            (send_raw(200, b""), "expected a JSON object, got nothing"),
        ],
        ids=["list", "not-json", "missing-keys", "empty"],
    )
    def test_success_status_with_the_wrong_body_is_not_reported_as_success(self, upstream, answer, message):
        """A 200 is not enough: a report counts as stored only when the answer is the stored app status."""
        tools = tools_against(upstream)
        upstream.routes[APP_STATUS] = answer
        with pytest.raises(ToolError) as caught:
            report(tools)
        assert str(caught.value).startswith("Could not store the status report: coderauth's answer is unusable: ")
        assert message in str(caught.value)
        assert len(str(caught.value)) < 200

    @pytest.mark.parametrize(
        "answer",
        [send_json(201, [child_body()]), send_json(201, {**child_body(), "token": "not-an-agent-token"})],
        ids=["list", "bad-token"],
    )
    def test_malformed_working_token_answer_is_a_tool_error_and_the_renewal_token_stays_held(self, upstream, answer):
        """A renewal whose mint answer is malformed fails the call; the renewal token is still this server's,
        and the clean exit revokes it."""
        tools = tools_against(upstream)
        renewal = tools.credentials.renewal
        tools.credentials.working.renew_at = 0  # due for renewal
        upstream.routes[("POST", f"{TOKENS}/rotate")] = upstream.routes[("POST", TOKENS)]
        upstream.routes[("POST", TOKENS)] = answer
        with pytest.raises(ToolError, match="the working token"):
            report(tools)
        held = tools.credentials.renewal
        assert held is not None and held.id != renewal.id, "the rotated renewal token is held"
        asyncio.run(tools.credentials.close())
        assert (held.id, held.token) in upstream.deletes()


class TestLimits:
    @pytest.mark.parametrize("declare_length", [True, False], ids=["content-length", "streamed"])
    def test_answer_over_the_cap_is_cut_off_not_held(self, upstream, declare_length):
        """50 MB back from coderauth: refused at MAX_RESPONSE_BYTES (1 MiB), by its declared length or while
        reading the stream, never returned as a tool result."""
        tools = tools_against(upstream)
        upstream.routes[("GET", "/api/v2/workspaceagents/me/manifest")] = send_huge(
            50 * 1024 * 1024, declare_length=declare_length
        )
        with pytest.raises(ToolError, match=f"larger than {client_module.MAX_RESPONSE_BYTES} bytes"):
            asyncio.run(tools.get_agent())

    def test_slow_trickle_hits_the_single_deadline_of_the_call(self, upstream, monkeypatch):
        """One byte at a time never trips a read timeout; the call's one deadline ends it with a tool error."""
        monkeypatch.setattr(client_module, "CALL_DEADLINE_SECONDS", 0.5)
        tools = tools_against(upstream)
        upstream.routes[APP_STATUS] = send_trickle(interval=0.1, count=200)
        with pytest.raises(
            ToolError, match=r"^Could not store the status report: coderauth did not answer within 0.5 s"
        ):
            report(tools)

    def test_the_deadline_covers_retries(self, upstream, monkeypatch):
        """503 after 503 with backoff: the retries stop at the call's deadline, not after MAX_ATTEMPTS sleeps."""
        monkeypatch.setattr(client_module, "CALL_DEADLINE_SECONDS", 0.5)
        monkeypatch.setattr(client_module, "BACKOFF_BASE_SECONDS", 1.0)
        tools = tools_against(upstream)
        upstream.routes[("GET", "/api/v2/workspaceagents/me/manifest")] = send_json(503, {"detail": "busy"})
        with pytest.raises(ToolError, match="did not answer within 0.5 s"):
            asyncio.run(tools.get_agent())


class TestWorkspacePages:
    def test_list_follows_next_across_pages(self, upstream):
        tools = tools_against(upstream, session_token=USER_TOKEN)
        page_two = f"{upstream.url}/api/v2/workspaces?cursor=two"
        page_three = f"{upstream.url}/api/v2/workspaces?cursor=three"
        upstream.routes[WORKSPACES] = send_json(200, {"results": [workspace("a")], "next": page_two})
        upstream.routes[("GET", "/api/v2/workspaces?cursor=two")] = send_json(
            200, {"results": [workspace("b")], "next": page_three}
        )
        upstream.routes[("GET", "/api/v2/workspaces?cursor=three")] = send_json(
            200, {"results": [workspace("side-project", owner="other")], "next": None}
        )
        listing = asyncio.run(tools.list_workspaces())
        assert [item["name"] for item in listing["workspaces"]] == ["a", "b", "side-project"]
        assert "truncated" not in listing
        found = asyncio.run(tools.get_workspace("other/side-project"))
        assert found["owner"] == "other"
        assert {token for method, path, token in upstream.seen if "workspaces" in path} == {USER_TOKEN}

    def test_pages_are_bounded(self, upstream, monkeypatch):
        monkeypatch.setattr(server_module, "MAX_WORKSPACE_PAGES", 2)
        tools = tools_against(upstream, session_token=USER_TOKEN)
        again = f"{upstream.url}/api/v2/workspaces?cursor=again"
        upstream.routes[WORKSPACES] = send_json(200, {"results": [workspace("a")], "next": again})
        upstream.routes[("GET", "/api/v2/workspaces?cursor=again")] = send_json(
            200, {"results": [workspace("a")], "next": again}
        )
        assert asyncio.run(tools.list_workspaces())["truncated"] is True
        assert len([path for _, path, _ in upstream.seen if "workspaces" in path]) == 2
        with pytest.raises(ToolError, match="in the first 2 pages"):
            asyncio.run(tools.get_workspace("missing"))

    def test_next_outside_coderauth_is_refused_and_the_user_token_goes_nowhere_else(self, upstream):
        with Upstream() as elsewhere:
            tools = tools_against(upstream, session_token=USER_TOKEN)
            upstream.routes[WORKSPACES] = send_json(
                200, {"results": [], "next": f"{elsewhere.url}/api/v2/workspaces?cursor=x"}
            )
            with pytest.raises(ToolError, match="'next' points outside coderauth"):
                asyncio.run(tools.list_workspaces())
            assert elsewhere.seen == []

    @pytest.mark.parametrize(
        "body",
        [[workspace("a")], {"results": {"a": 1}, "next": None}, {"results": [{"name": "a"}], "next": None}],
        ids=["bare-list", "results-not-a-list", "item-without-id"],
    )
    def test_a_page_of_the_wrong_shape_is_a_tool_error(self, upstream, body):
        tools = tools_against(upstream, session_token=USER_TOKEN)
        upstream.routes[WORKSPACES] = send_json(200, body)
        with pytest.raises(
            ToolError, match="^Could not list workspaces: coderauth's answer is unusable: the workspace"
        ):
            asyncio.run(tools.list_workspaces())


class TestStartUp:
    """The real process, given the token by file, against the loopback upstream."""

    def start(self, upstream: Upstream, tmp_path) -> tuple:
        token_file = tmp_path / "agent-token"
        token_file.write_text(PARENT)
        result = run_server_process(server_env(CODER_URL=upstream.url, CODER_AGENT_TOKEN_FILE=str(token_file)))
        lines = result.stderr.strip().splitlines()
        assert "Traceback" not in result.stderr
        assert PARENT not in result.stderr and result.stdout == ""
        return result, lines

    @pytest.mark.parametrize(
        ("answer", "message"),
        [
            (send_json(200, [MANIFEST]), "the agent manifest: expected a JSON object, got a list"),
            (send_raw(200, b"<html>coderauth</html>"), "the answer is not JSON"),
            (send_json(200, {**MANIFEST, "scopes": "agent:connect"}), "'scopes' is missing or not a list of strings"),
            (send_huge(50 * 1024 * 1024, declare_length=False), "larger than 1048576 bytes"),
        ],
        ids=["list", "not-json", "scopes-not-a-list", "50MB"],
    )
    def test_malformed_manifest_is_one_line_and_exit_status_1(self, upstream, tmp_path, answer, message):
        upstream.routes[("GET", "/api/v2/workspaceagents/me/manifest")] = answer
        result, lines = self.start(upstream, tmp_path)
        assert result.returncode == server_module.EXIT_TOKEN
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("coderauth-mcp: cannot check CODER_AGENT_TOKEN_FILE (cda_…") and message in lines[0]
        assert [method for method, _, _ in upstream.seen] == ["GET"], "nothing was minted"

    def test_malformed_renewal_mint_answer_revokes_the_token_it_names(self, upstream, tmp_path):
        """The bootstrap process cannot use a renewal token with a malformed answer, but coderauth minted it:
        revoked by the id the answer gave, with the parent token, before exiting."""
        bad = {**child_body(), "scopes": "agent:connect agent:report"}
        upstream.routes[("POST", TOKENS)] = send_json(201, bad)
        result, lines = self.start(upstream, tmp_path)
        assert result.returncode == server_module.EXIT_TOKEN
        assert len(lines) == 1 and "could not mint its child token" in lines[0] and "'scopes'" in lines[0]
        assert upstream.deletes() == [(bad["id"], PARENT)]

    @pytest.mark.parametrize(
        "answer",
        [send_json(201, ["not", "a", "token"]), send_raw(201, b"minted"), send_json(500, {"detail": "boom"})],
        ids=["list", "not-json", "500"],
    )
    def test_failed_working_token_mint_revokes_the_renewal_token(self, upstream, tmp_path, answer):
        """After the renewal mint, every start-up failure revokes it: nothing live is left behind."""
        renewal = child_body()
        upstream.routes[("POST", TOKENS)] = in_turn(send_json(201, renewal), answer)
        result, lines = self.start(upstream, tmp_path)
        assert result.returncode == server_module.EXIT_TOKEN
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("coderauth-mcp: CODER_AGENT_TOKEN_FILE's renewal token could not mint the working")
        assert upstream.deletes() == [(renewal["id"], renewal["token"])]
        assert renewal["token"] not in result.stderr
