"""The MCP server's parts without a server: configuration, retry policy, token renewal, call-time checks.

No database: coderauth is played by an httpx MockTransport.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import httpx
import pytest
from mcp.server.fastmcp.exceptions import ToolError

from coderauth.mcp import client as client_module
from coderauth.mcp.client import AgentCredentials, ApiError, CoderClient, Unreachable
from coderauth.mcp.config import APP_STATUS_SLUG_PATTERN, Config, ConfigError, load_config, token_hint
from coderauth.mcp.server import CoderTools
from tests.mcp_server.harness import REPO_ROOT

PARENT = "cda_parent000000000000000000000000000000"
URL = "http://coderauth.test"


def test_mcp_package_imports_no_django():
    """The server runs in a workspace without Django or a database: importing it must not pull Django in."""
    code = "import coderauth.mcp.server, sys; assert not any(m.startswith('django') for m in sys.modules), 'django'"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(REPO_ROOT)},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


class TestConfig:
    def test_environment_names(self):
        config = load_config(
            [],
            {
                "CODER_URL": "http://x/",
                "CODER_AGENT_TOKEN": " a ",
                "CODER_SESSION_TOKEN": "u",
                "CODER_MCP_APP_STATUS_SLUG": "claude",
                "CODER_MCP_ALLOWED_TOOLS": "coder_get_agent,coder_report_task",
            },
        )
        assert (config.url, config.agent_token, config.agent_token_source) == ("http://x", "a", "CODER_AGENT_TOKEN")
        assert (config.session_token, config.app_status_slug) == ("u", "claude")
        assert config.allowed_tools == {"coder_get_agent", "coder_report_task"}

    def test_flags_win_over_environment(self, tmp_path):
        token_file = tmp_path / "token"
        token_file.write_text("from-file\n")
        config = load_config(
            ["--url", "https://flag", "--agent-token-file", str(token_file), "--app-status-slug", "cursor"],
            {"CODER_URL": "http://env", "CODER_AGENT_TOKEN": "from-env"},
        )
        assert (config.url, config.agent_token, config.agent_token_source) == (
            "https://flag",
            "from-file",
            "--agent-token-file",
        )
        assert config.app_status_slug == "cursor"

    def test_defaults(self):
        config = load_config([], {"CODER_URL": "http://x", "CODER_AGENT_TOKEN": "a"})
        assert (config.app_status_slug, config.allowed_tools, config.session_token) == ("coder", None, None)

    @pytest.mark.parametrize(
        ("environ", "message"),
        [
            ({"CODER_AGENT_TOKEN": "a"}, "CODER_URL is missing"),
            ({"CODER_URL": "ftp://x", "CODER_AGENT_TOKEN": "a"}, "CODER_URL must start with http"),
            ({"CODER_URL": "http://x"}, "CODER_AGENT_TOKEN is missing"),
            ({"CODER_URL": "http://x", "CODER_AGENT_TOKEN": "  "}, "CODER_AGENT_TOKEN is missing"),
            ({"CODER_URL": "http://x", "CODER_AGENT_TOKEN_FILE": "/nonexistent/t"}, "CODER_AGENT_TOKEN_FILE"),
            (
                {"CODER_URL": "http://x", "CODER_AGENT_TOKEN": "a", "CODER_MCP_ALLOWED_TOOLS": "coder_rm_rf"},
                "unknown tools: coder_rm_rf",
            ),
        ],
    )
    def test_errors_name_the_problem(self, environ, message):
        with pytest.raises(ConfigError, match=message):
            load_config([], environ)

    @pytest.mark.parametrize("slug", ["Claude", "claude code", "claude.code", "-claude", "_claude", "c" * 64, "cläude"])
    def test_app_status_slug_outside_the_servers_pattern_is_a_config_error(self, slug):
        """The server refuses such a slug on every report, so start-up refuses it first, naming the variable."""
        environ = {"CODER_URL": "http://x", "CODER_AGENT_TOKEN": "a", "CODER_MCP_APP_STATUS_SLUG": slug}
        with pytest.raises(ConfigError, match=r"^CODER_MCP_APP_STATUS_SLUG .* is not a valid app slug") as caught:
            load_config([], environ)
        assert "\n" not in str(caught.value)

    def test_app_status_slug_flag_is_named_when_it_is_the_bad_one(self):
        with pytest.raises(ConfigError, match=r"^--app-status-slug 'Bad' is not a valid app slug"):
            load_config(["--app-status-slug", "Bad"], {"CODER_URL": "http://x", "CODER_AGENT_TOKEN": "a"})

    @pytest.mark.parametrize("slug", ["c", "0", "claude-code", "cursor_2", "c" * 63])
    def test_app_status_slugs_the_server_accepts_are_accepted(self, slug):
        environ = {"CODER_URL": "http://x", "CODER_AGENT_TOKEN": "a", "CODER_MCP_APP_STATUS_SLUG": f" {slug} "}
        assert load_config([], environ).app_status_slug == slug

    def test_app_status_slug_pattern_is_the_servers(self):
        """The MCP server cannot import the app-status endpoint (no Django there), so this keeps the copies equal."""
        from agents.apis.agent import AgentAppStatusApi  # here only: the rest of this module needs no Django

        field = AgentAppStatusApi.InputSerializer().fields["app_slug"]
        patterns = [validator.regex.pattern for validator in field.validators if hasattr(validator, "regex")]
        assert patterns == [APP_STATUS_SLUG_PATTERN]

    def test_empty_token_file(self, tmp_path):
        (tmp_path / "t").write_text("\n")
        with pytest.raises(ConfigError, match="is empty"):
            load_config([], {"CODER_URL": "http://x", "CODER_AGENT_TOKEN_FILE": str(tmp_path / "t")})

    def test_tokens_stay_out_of_repr_and_hints(self):
        config = load_config(
            [], {"CODER_URL": "http://x", "CODER_AGENT_TOKEN": PARENT, "CODER_SESSION_TOKEN": "cdu_s3cr3t99"}
        )
        assert PARENT not in repr(config) and "s3cr3t" not in repr(config)
        assert token_hint(PARENT) == "cda_…0000"
        assert token_hint("short") == "…"


def run(coroutine):
    return asyncio.run(coroutine)


async def no_sleep(seconds: float) -> None:
    no_sleep.calls.append(seconds)


def scripted_client(*answers) -> tuple[CoderClient, list[httpx.Request]]:
    """A client whose transport replays `answers` (status codes, or exceptions to raise) in order."""
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer, json={"detail": f"status {answer}"})

    no_sleep.calls = []
    return CoderClient(URL, transport=httpx.MockTransport(handler), sleep=no_sleep), seen


class TestRetry:
    def test_transient_statuses_are_retried_then_succeed(self):
        client, seen = scripted_client(503, 502, 200)
        assert run(client.request("GET", "users/me", token="t")) == {"detail": "status 200"}
        assert len(seen) == 3
        assert len(no_sleep.calls) == 2 and no_sleep.calls[0] <= no_sleep.calls[1] * 2

    def test_connection_errors_are_retried(self):
        client, seen = scripted_client(httpx.ConnectError("refused"), 200)
        run(client.request("GET", "users/me", token="t"))
        assert len(seen) == 2

    @pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500])
    def test_client_errors_are_not_retried(self, status):
        client, seen = scripted_client(status, 200)
        with pytest.raises(ApiError) as caught:
            run(client.request("GET", "users/me", token="t"))
        assert caught.value.status == status and len(seen) == 1

    def test_retries_are_bounded(self):
        client, seen = scripted_client(*([503] * 10))
        with pytest.raises(ApiError, match="503"):
            run(client.request("GET", "users/me", token="t"))
        assert len(seen) == client_module.MAX_ATTEMPTS
        assert all(delay <= client_module.BACKOFF_MAX_SECONDS for delay in no_sleep.calls)

    def test_unreachable_after_bounded_connection_errors(self):
        client, seen = scripted_client(*[httpx.ConnectError("refused")] * 10)
        with pytest.raises(Unreachable, match="cannot reach http://coderauth.test"):
            run(client.request("GET", "users/me", token="t"))
        assert len(seen) == client_module.MAX_ATTEMPTS

    @pytest.mark.parametrize(
        "failure",
        [
            httpx.ReadTimeout("read timed out"),
            httpx.WriteTimeout("write timed out"),
            httpx.ReadError("connection reset"),
            httpx.RemoteProtocolError("server disconnected without sending a response"),
            502,
            503,
            504,
        ],
        ids=["read-timeout", "write-timeout", "read-error", "disconnected", "502", "503", "504"],
    )
    def test_post_that_may_have_reached_the_server_is_sent_once(self, failure):
        """A POST mints a token: repeating it after the request may have been applied could leave a duplicate."""
        client, seen = scripted_client(failure, 201)
        with pytest.raises((Unreachable, ApiError)) as caught:
            run(client.request("POST", "workspaceagents/me/tokens", token="t", json={"name": "x"}))
        assert len(seen) == 1 and no_sleep.calls == []
        if isinstance(failure, Exception):
            assert "not retried, as the server may have applied it" in str(caught.value)

    @pytest.mark.parametrize(
        "failure",
        [httpx.ConnectError("connection refused"), httpx.ConnectTimeout("connect timed out"), httpx.PoolTimeout("")],
        ids=["refused", "connect-timeout", "pool-timeout"],
    )
    def test_post_that_never_left_is_retried(self, failure):
        client, seen = scripted_client(failure, failure, 201)
        assert run(client.request("POST", "workspaceagents/me/tokens", token="t", json={})) == {"detail": "status 201"}
        assert len(seen) == 3 and len(no_sleep.calls) == 2

    def test_post_retries_before_sending_are_bounded(self):
        client, seen = scripted_client(*[httpx.ConnectError("refused")] * 10)
        with pytest.raises(Unreachable, match="cannot reach http://coderauth.test"):
            run(client.request("POST", "workspaceagents/me/tokens", token="t", json={}))
        assert len(seen) == client_module.MAX_ATTEMPTS
        assert all(delay <= client_module.BACKOFF_MAX_SECONDS for delay in no_sleep.calls)

    @pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
    @pytest.mark.parametrize("failure", [httpx.ReadTimeout("read timed out"), 503], ids=["read-timeout", "503"])
    def test_repeatable_methods_keep_the_bounded_retry_after_sending(self, method, failure):
        client, seen = scripted_client(failure, 200)
        run(client.request(method, "workspaceagents/me/app-status", token="t", json={"state": "idle"}))
        assert len(seen) == 2 and {request.method for request in seen} == {method}
        assert seen[0].content == seen[1].content

    def test_scope_denial_is_readable(self):
        error = ApiError(
            403,
            {
                "detail": "Mode 'x' does not allow 'agent:report'.",
                "required_scope": "agent:report",
                "permission_mode": "x",
            },
            method="PATCH",
            path="p",
        )
        assert str(error) == "403 Mode 'x' does not allow 'agent:report'. (required scope agent:report, mode x)"
        field_error = ApiError(400, {"detail": "Invalid input.", "uri": ["Enter a valid URL."]}, method="P", path="p")
        assert str(field_error) == "400 Invalid input. uri: Enter a valid URL."


class FakeCoderauth:
    """Just enough of the agent token API to follow which token mints, uses and revokes which."""

    def __init__(self, *, allowed=("agent:connect", "agent:report", "agent:gitsshkey")):
        self.allowed = set(allowed)
        self.tokens: dict[str, dict] = {PARENT: {"id": "parent", "scopes": set(allowed), "revoked": False}}
        self.log: list[tuple[str, str, str]] = []  # (method, path, token id)
        self.outage: int | Exception | None = None  # a status or an exception for every request

    def handler(self, request: httpx.Request) -> httpx.Response:
        secret = request.headers["Authorization"].removeprefix("Bearer ")
        token = self.tokens.get(secret)
        path = request.url.path.removeprefix("/api/v2/")
        if token is None or token["revoked"]:
            return httpx.Response(401, json={"detail": "Invalid, expired or revoked token."})
        self.log.append((request.method, path, token["id"]))
        if self.outage is not None:
            if isinstance(self.outage, Exception):
                raise self.outage
            return httpx.Response(self.outage, text="<html>Bad gateway</html>")
        now_allowed = token["scopes"] & self.allowed
        if path == "workspaceagents/me/tokens" and request.method == "POST":
            body = json.loads(request.content)
            scopes = set(body.get("scopes", now_allowed))
            if not scopes or not scopes <= now_allowed:
                return httpx.Response(400, json={"detail": "outside"})
            number = len(self.tokens)
            secret = f"cda_child{number}"
            self.tokens[secret] = {"id": f"child{number}", "scopes": scopes, "revoked": False, "parent": token["id"]}
            return httpx.Response(
                201, json={"id": f"child{number}", "token": secret, "scopes": sorted(scopes), "expires_at": "later"}
            )
        if request.method == "DELETE":
            target = path.rsplit("/", 1)[1]
            for entry in self.tokens.values():
                if entry["id"] == target or entry.get("parent") == target:
                    entry["revoked"] = True
            return httpx.Response(204)
        required = "agent:report" if path.endswith("app-status") else "agent:connect"
        if required not in now_allowed:
            return httpx.Response(403, json={"detail": "denied", "required_scope": required, "permission_mode": "m"})
        return httpx.Response(200, json={"scopes": sorted(now_allowed), "permission_mode": "default"})


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def started(fake: FakeCoderauth, clock: Clock) -> AgentCredentials:
    client = CoderClient(URL, transport=httpx.MockTransport(fake.handler), sleep=no_sleep)
    credentials = AgentCredentials(client, clock=clock)

    async def start():
        await credentials.read_manifest(parent_token=PARENT)
        await credentials.mint(parent_token=PARENT)

    run(start())
    return credentials


class TestChildTokens:
    def test_children_hold_connect_and_report_only_and_the_parent_is_done_after_start_up(self):
        fake, clock = FakeCoderauth(), Clock()
        credentials = started(fake, clock)
        assert set(credentials.renewal.scopes) == set(credentials.working.scopes) == {"agent:connect", "agent:report"}
        assert [entry[2] for entry in fake.log] == ["parent", "parent", "child1"]
        run(credentials.agent_request("GET", "workspaceagents/me/manifest"))
        assert fake.log[-1] == ("GET", "workspaceagents/me/manifest", "child2")

    def test_report_scope_missing_at_start_still_starts(self):
        fake, clock = FakeCoderauth(allowed=("agent:connect",)), Clock()
        credentials = started(fake, clock)
        assert credentials.working.scopes == ("agent:connect",)

    def test_working_token_is_renewed_from_the_renewal_token_after_two_thirds(self):
        """Renewal never needs the parent, so a child minted from the renewal token can outlive the previous one."""
        fake, clock = FakeCoderauth(), Clock()
        credentials = started(fake, clock)
        first = credentials.working
        clock.now += client_module.WORKING_TOKEN_LIFETIME_SECONDS * 0.6
        run(credentials.agent_request("GET", "workspaceagents/me/manifest"))
        assert credentials.working is first
        clock.now += client_module.WORKING_TOKEN_LIFETIME_SECONDS * 0.1
        run(credentials.agent_request("GET", "workspaceagents/me/manifest"))
        assert credentials.working is not first
        assert ("POST", "workspaceagents/me/tokens", "child1") in fake.log
        assert ("DELETE", f"workspaceagents/me/tokens/{first.id}", "child1") in fake.log
        assert fake.log[-1][2] == credentials.working.id
        assert all(entry[2] != "parent" for entry in fake.log[2:])

    def test_revoked_working_token_is_replaced_once(self):
        fake, clock = FakeCoderauth(), Clock()
        credentials = started(fake, clock)
        fake.tokens[credentials.working.token]["revoked"] = True
        run(credentials.agent_request("GET", "workspaceagents/me/manifest"))
        assert fake.log[-1][2] == credentials.working.id != "child2"

    def test_narrowed_renewal_falls_back_and_widens_again_on_denial(self):
        fake, clock = FakeCoderauth(), Clock()
        credentials = started(fake, clock)
        fake.allowed = {"agent:connect"}
        clock.now += client_module.WORKING_TOKEN_LIFETIME_SECONDS
        with pytest.raises(ApiError) as caught:
            run(credentials.agent_request("PATCH", "workspaceagents/me/app-status", json={}))
        assert caught.value.status == 403
        assert credentials.working.scopes == ("agent:connect",)
        fake.allowed = {"agent:connect", "agent:report"}
        run(credentials.agent_request("PATCH", "workspaceagents/me/app-status", json={}))
        assert set(credentials.working.scopes) == {"agent:connect", "agent:report"}

    def test_lost_mint_answer_leaves_no_duplicate_child_token(self):
        """The server mints the child, then the answer is lost (read timeout): start-up fails rather than mint again."""
        fake, clock = FakeCoderauth(), Clock()

        def answer_lost(request: httpx.Request) -> httpx.Response:
            response = fake.handler(request)
            if request.method == "POST":
                raise httpx.ReadTimeout("read timed out", request=request)
            return response

        credentials = AgentCredentials(
            CoderClient(URL, transport=httpx.MockTransport(answer_lost), sleep=no_sleep), clock=clock
        )
        run(credentials.read_manifest(parent_token=PARENT))
        with pytest.raises(Unreachable, match="POST workspaceagents/me/tokens"):
            run(credentials.mint(parent_token=PARENT))
        assert [entry[:2] for entry in fake.log].count(("POST", "workspaceagents/me/tokens")) == 1
        assert len(fake.tokens) == 2  # the parent and the one child the lost answer described

    def test_close_revokes_the_renewal_token_and_its_subtree(self):
        fake, clock = FakeCoderauth(), Clock()
        credentials = started(fake, clock)
        renewal, working = credentials.renewal, credentials.working
        run(credentials.close())
        assert fake.tokens[renewal.token]["revoked"] and fake.tokens[working.token]["revoked"]
        assert not fake.tokens[PARENT]["revoked"]
        assert PARENT not in repr(renewal) and renewal.token not in repr(renewal)


def test_user_tools_check_the_user_token_at_call_time():
    """Hiding a tool is not authorisation: the user tools refuse without a user token even when invoked directly."""
    config = Config(url=URL, agent_token="", agent_token_source="CODER_AGENT_TOKEN")
    tools = CoderTools(config=config, credentials=None, user=None)
    for call in (tools.get_authenticated_user(), tools.list_workspaces(), tools.get_workspace("main")):
        with pytest.raises(ToolError, match="needs a user token"):
            run(call)


@pytest.mark.parametrize("outage", [503, 500, httpx.ConnectError("connection refused")], ids=["503", "500", "refused"])
def test_server_failures_become_readable_tool_errors(outage):
    """5xx and connection refused mid-session: a tool error naming the failure, after bounded retries, no crash."""
    fake, clock = FakeCoderauth(), Clock()
    credentials = started(fake, clock)
    config = Config(url=URL, agent_token="", agent_token_source="CODER_AGENT_TOKEN")
    tools = CoderTools(config=config, credentials=credentials, user=None)
    fake.outage = outage
    with pytest.raises(ToolError) as caught:
        run(tools.report_task(summary="Building", link="", state="working"))
    message = str(caught.value)
    assert message.startswith("Could not store the status report: ")
    assert (str(outage) if isinstance(outage, int) else "cannot reach http://coderauth.test") in message
    assert "<html>" not in message
    fake.outage = None
    assert run(tools.report_task(summary="Building", link="", state="working"))["reported"] is True
