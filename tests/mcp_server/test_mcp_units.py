"""The MCP server's parts without a server: configuration, retry policy, token renewal, call-time checks.

No database: coderauth is played by an httpx MockTransport.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import subprocess
import sys
import uuid

import httpx
import pytest
from mcp.server.fastmcp.exceptions import ToolError

from coderauth.mcp import client as client_module
from coderauth.mcp.client import AgentCredentials, ApiError, CoderClient, CredentialsRevoked, Unreachable
from coderauth.mcp.config import (
    APP_STATUS_SLUG_PATTERN,
    Config,
    ConfigError,
    load_config,
    read_token_file,
    token_hint,
)
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
        assert (config.url, config.agent_token_source, config.agent_token_file) == (
            "http://x",
            "CODER_AGENT_TOKEN",
            None,
        )
        assert (config.session_token, config.app_status_slug) == ("u", "claude")
        assert config.allowed_tools == {"coder_get_agent", "coder_report_task"}

    def test_flags_win_over_environment(self, tmp_path):
        token_file = tmp_path / "token"
        token_file.write_text("from-file\n")
        config = load_config(
            ["--url", "https://flag", "--agent-token-file", str(token_file), "--app-status-slug", "cursor"],
            {"CODER_URL": "http://env", "CODER_AGENT_TOKEN": "from-env"},
        )
        assert (config.url, config.agent_token_file, config.agent_token_source) == (
            "https://flag",
            str(token_file),
            "--agent-token-file",
        )
        assert config.app_status_slug == "cursor"

    def test_the_servers_config_never_holds_the_agent_token(self, tmp_path):
        """The long-lived process learns only where the token is; the bootstrap process reads it."""
        token_file = tmp_path / "token"
        token_file.write_text(PARENT)
        for environ in ({"CODER_AGENT_TOKEN": PARENT}, {"CODER_AGENT_TOKEN_FILE": str(token_file)}):
            config = load_config([], {"CODER_URL": "http://x", **environ})
            assert PARENT not in repr(dataclasses.asdict(config))

    def test_agent_token_on_the_command_line_is_refused(self):
        """A command line is readable by every process (ps, /proc/<pid>/cmdline): the flag is refused."""
        with pytest.raises(ConfigError, match=r"^--agent-token is refused: .*CODER_AGENT_TOKEN_FILE"):
            load_config(["--agent-token", PARENT], {"CODER_URL": "http://x"})

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

    def test_empty_or_missing_token_file(self, tmp_path):
        (tmp_path / "t").write_text("\n")
        with pytest.raises(ConfigError, match="is empty"):
            read_token_file(str(tmp_path / "t"), "CODER_AGENT_TOKEN_FILE")
        with pytest.raises(ConfigError, match="^CODER_AGENT_TOKEN_FILE /nonexistent/t cannot be read"):
            read_token_file("/nonexistent/t", "CODER_AGENT_TOKEN_FILE")

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


MANIFEST_FIELDS = {
    "agent_id": str(uuid.uuid4()),
    "agent_name": "main",
    "workspace_id": str(uuid.uuid4()),
    "workspace_name": "demo",
    "owner_username": "owner",
}


class FakeCoderauth:
    """Just enough of the agent token API, rotation and reuse detection included, to follow which token mints,
    uses, rotates and revokes which. Tokens are named in the log by label (parent, child1, child2 …)."""

    def __init__(self, *, allowed=("agent:connect", "agent:report", "agent:gitsshkey")):
        self.allowed = set(allowed)
        self.tokens: dict[str, dict] = {
            PARENT: {"id": str(uuid.uuid4()), "label": "parent", "scopes": set(allowed), "revoked": False}
        }
        self.log: list[tuple[str, str, str]] = []  # (method, path, token label)
        self.outage: int | Exception | None = None  # a status or an exception for every request
        self.reuse_detected = 0

    def by_id(self, token_id: str) -> dict:
        return next(entry for entry in self.tokens.values() if entry["id"] == token_id)

    def by_label(self, label: str) -> dict:
        return next(entry for entry in self.tokens.values() if entry["label"] == label)

    def secret_of(self, label: str) -> str:
        return next(secret for secret, entry in self.tokens.items() if entry["label"] == label)

    def _revoke_subtree(self, token_id: str) -> None:
        for entry in self.tokens.values():
            if entry["id"] == token_id or entry.get("parent") == token_id:
                if not entry["revoked"] or entry["id"] != token_id:
                    entry["revoked"] = True
                if entry["id"] != token_id:
                    self._revoke_subtree(entry["id"])

    def _mint(self, scopes: set, *, parent: str) -> tuple[str, dict]:
        number = len(self.tokens)
        secret = f"cda_child{number}"
        entry = {"id": str(uuid.uuid4()), "label": f"child{number}", "scopes": scopes, "revoked": False}
        entry["parent"] = parent
        self.tokens[secret] = entry
        return secret, entry

    @staticmethod
    def _body(secret: str, entry: dict) -> dict:
        return {"id": entry["id"], "token": secret, "scopes": sorted(entry["scopes"]), "expires_at": "later"}

    def handler(self, request: httpx.Request) -> httpx.Response:
        secret = request.headers["Authorization"].removeprefix("Bearer ")
        token = self.tokens.get(secret)
        path = request.url.path.removeprefix("/api/v2/")
        if token is not None and token["revoked"] and token.get("rotated_to"):
            # A rotated-out token presented again: two holders, one a thief. Revoke the whole lineage.
            self.reuse_detected += 1
            successor = token["rotated_to"]
            while successor:
                self._revoke_subtree(successor)
                successor = self.by_id(successor).get("rotated_to")
        if token is None or token["revoked"]:
            return httpx.Response(401, json={"detail": "Invalid, expired or revoked token."})
        self.log.append((request.method, path, token["label"]))
        if self.outage is not None:
            if isinstance(self.outage, Exception):
                raise self.outage
            return httpx.Response(self.outage, text="<html>Bad gateway</html>")
        now_allowed = token["scopes"] & self.allowed
        if path == "workspaceagents/me/tokens/rotate" and request.method == "POST":
            new_secret, successor = self._mint(set(token["scopes"]), parent=token.get("parent"))
            for entry in self.tokens.values():
                if entry.get("parent") == token["id"]:
                    entry["parent"] = successor["id"]
            token["revoked"], token["rotated_to"] = True, successor["id"]
            return httpx.Response(201, json=self._body(new_secret, successor))
        if path == "workspaceagents/me/tokens" and request.method == "POST":
            body = json.loads(request.content)
            scopes = set(body.get("scopes", now_allowed))
            if not scopes or not scopes <= now_allowed:
                return httpx.Response(400, json={"detail": "outside"})
            new_secret, child = self._mint(scopes, parent=token["id"])
            return httpx.Response(201, json=self._body(new_secret, child))
        if request.method == "DELETE":
            self._revoke_subtree(path.rsplit("/", 1)[1])
            return httpx.Response(204)
        required = "agent:report" if path.endswith("app-status") else "agent:connect"
        if required not in now_allowed:
            return httpx.Response(403, json={"detail": "denied", "required_scope": required, "permission_mode": "m"})
        if path.endswith("app-status"):
            body = json.loads(request.content)
            return httpx.Response(200, json={key: body[key] for key in ("app_slug", "state", "message", "uri")})
        scopes = sorted(self.allowed)
        return httpx.Response(200, json={**MANIFEST_FIELDS, "scopes": scopes, "permission_mode": "m"})

    def upstream(self, labels=None) -> list[tuple[str, str]]:
        return [(method, path) for method, path, label in self.log if labels is None or label in labels]


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def started(fake: FakeCoderauth, clock: Clock) -> AgentCredentials:
    """What the bootstrap process and then the server do at start-up, in one object for the test."""
    client = CoderClient(URL, transport=httpx.MockTransport(fake.handler), sleep=no_sleep)
    credentials = AgentCredentials(client, clock=clock)

    async def start():
        await credentials.read_manifest(parent_token=PARENT)
        await credentials.mint_renewal(parent_token=PARENT)
        await credentials.start_working()

    run(start())
    return credentials


def tools_for(credentials: AgentCredentials) -> CoderTools:
    return CoderTools(
        config=Config(url=URL, agent_token_source="CODER_AGENT_TOKEN"), credentials=credentials, user=None
    )


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

    def test_renewal_rotates_the_renewal_token_then_mints_from_its_successor(self):
        """Renewal never needs the parent; each one rotates the renewal token first, so only the newest is live."""
        fake, clock = FakeCoderauth(), Clock()
        credentials = started(fake, clock)
        first, first_renewal = credentials.working, credentials.renewal
        clock.now += client_module.WORKING_TOKEN_LIFETIME_SECONDS * 0.6
        run(credentials.agent_request("GET", "workspaceagents/me/manifest"))
        assert credentials.working is first
        clock.now += client_module.WORKING_TOKEN_LIFETIME_SECONDS * 0.1
        run(credentials.agent_request("GET", "workspaceagents/me/manifest"))
        assert credentials.working is not first
        assert fake.log[4:] == [
            ("POST", "workspaceagents/me/tokens/rotate", "child1"),
            ("POST", "workspaceagents/me/tokens", "child3"),
            ("DELETE", f"workspaceagents/me/tokens/{first.id}", "child3"),
            ("GET", "workspaceagents/me/manifest", "child4"),
        ]
        assert credentials.renewal.token == fake.secret_of("child3") != first_renewal.token
        assert fake.tokens[first_renewal.token]["revoked"], "the rotated-out renewal token is revoked"
        assert all(entry[2] != "parent" for entry in fake.log[2:])

    def test_revoked_working_token_is_replaced_once(self):
        fake, clock = FakeCoderauth(), Clock()
        credentials = started(fake, clock)
        fake.tokens[credentials.working.token]["revoked"] = True
        run(credentials.agent_request("GET", "workspaceagents/me/manifest"))
        assert fake.log[-1][2] == fake.by_id(credentials.working.id)["label"] != "child2"

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
        body = {"app_slug": "coder", "state": "idle", "message": "m", "uri": ""}
        run(credentials.agent_request("PATCH", "workspaceagents/me/app-status", json=body))
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
            run(credentials.mint_renewal(parent_token=PARENT))
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


class TestTheftDetection:
    def test_renewal_token_used_by_a_thief_revokes_the_lineage_and_tools_say_so(self, caplog):
        """A thief rotates a stolen copy of the renewal token first; the server's next renewal presents the
        rotated-out token, coderauth revokes the whole lineage (the thief's successor too), and every tool
        then answers "credentials revoked" without sending anything more."""
        fake, clock = FakeCoderauth(), Clock()
        credentials = started(fake, clock)
        stolen = credentials.renewal.token
        thief = httpx.Client(transport=httpx.MockTransport(fake.handler), base_url=f"{URL}/api/v2/")
        thiefs = thief.post("workspaceagents/me/tokens/rotate", headers={"Authorization": f"Bearer {stolen}"}).json()
        clock.now += client_module.WORKING_TOKEN_LIFETIME_SECONDS
        tools = tools_for(credentials)
        with (
            caplog.at_level(logging.ERROR, logger="coderauth.mcp"),
            pytest.raises(ToolError, match="^credentials revoked; restart the MCP server with a fresh agent token"),
        ):
            run(tools.get_agent())
        assert fake.reuse_detected == 1
        assert fake.tokens[thiefs["token"]]["revoked"], "the thief's successor is revoked with the lineage"
        assert [record.message for record in caplog.records if "possible theft" in record.message]
        assert stolen not in caplog.text and thiefs["token"] not in caplog.text
        sent = len(fake.log)
        with pytest.raises(ToolError, match="^credentials revoked"):
            run(tools.report_task(summary="After the theft", link="", state="working"))
        assert len(fake.log) == sent
        run(credentials.close())  # nothing left to revoke; does not raise

    def test_rotated_out_renewal_token_presented_by_a_thief_revokes_the_servers_tokens(self):
        """The other order: the server rotated first, the thief presents the old copy; the server's working
        token dies with the lineage and its next renewal is refused: credentials revoked."""
        fake, clock = FakeCoderauth(), Clock()
        credentials = started(fake, clock)
        stolen = credentials.renewal.token
        clock.now += client_module.WORKING_TOKEN_LIFETIME_SECONDS
        run(credentials.agent_request("GET", "workspaceagents/me/manifest"))  # renews: rotates
        thief = httpx.Client(transport=httpx.MockTransport(fake.handler), base_url=f"{URL}/api/v2/")
        assert thief.post("workspaceagents/me/tokens", headers={"Authorization": f"Bearer {stolen}"}).status_code == 401
        with pytest.raises(CredentialsRevoked):
            run(credentials.agent_request("GET", "workspaceagents/me/manifest"))
        assert fake.reuse_detected == 1

    @pytest.mark.parametrize(
        "failure",
        [httpx.ReadTimeout("read timed out"), 502, "not json"],
        ids=["answer-lost", "502", "malformed"],
    )
    def test_rotation_of_unknown_outcome_is_sent_once_and_leaves_nothing_live(self, failure):
        """A rotate POST is never repeated (a repeat looks like reuse). When its outcome is unknown, the old
        renewal token is presented once to revoke it: coderauth either revokes it or, if the rotation did
        happen, sees the reuse and revokes the lineage. Either way no token of this server stays live."""
        fake, clock = FakeCoderauth(), Clock()

        def rotation_fails(request: httpx.Request) -> httpx.Response:
            response = fake.handler(request)
            if request.url.path.endswith("/rotate"):
                if isinstance(failure, Exception):
                    raise failure
                if failure == "not json":
                    return httpx.Response(201, text="<html>ok</html>")
                return httpx.Response(failure, text="bad gateway")
            return response

        credentials = started(fake, clock)
        credentials.client = CoderClient(URL, transport=httpx.MockTransport(rotation_fails), sleep=no_sleep)
        clock.now += client_module.WORKING_TOKEN_LIFETIME_SECONDS
        with pytest.raises(ToolError, match="^credentials revoked"):
            run(tools_for(credentials).get_agent())
        assert fake.upstream().count(("POST", "workspaceagents/me/tokens/rotate")) == 1
        assert all(entry["revoked"] for entry in fake.tokens.values() if entry["label"] != "parent")

    def test_refused_rotation_keeps_the_renewal_token(self):
        """A 4xx other than 401 is an answer: nothing was rotated, so the renewal token stays in use."""
        fake, clock = FakeCoderauth(), Clock()

        def rotation_refused(request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/rotate"):
                return httpx.Response(429, json={"detail": "slow down"})
            return fake.handler(request)

        credentials = started(fake, clock)
        renewal = credentials.renewal
        credentials.client = CoderClient(URL, transport=httpx.MockTransport(rotation_refused), sleep=no_sleep)
        clock.now += client_module.WORKING_TOKEN_LIFETIME_SECONDS
        run(credentials.agent_request("GET", "workspaceagents/me/manifest"))
        assert credentials.renewal is renewal and not fake.tokens[renewal.token]["revoked"]


class TestReportWithoutAmplification:
    def test_mode_without_report_at_start_refuses_locally_with_no_request(self):
        """The renewal token lacks agent:report, so no working token can hold it: refused before any request."""
        fake, clock = FakeCoderauth(allowed=("agent:connect",)), Clock()
        tools = tools_for(started(fake, clock))
        sent = len(fake.log)
        for number in range(5):
            with pytest.raises(ToolError, match="did not allow agent:report when the MCP server started"):
                run(tools.report_task(summary=f"Step {number}", link="", state="working"))
        assert len(fake.log) == sent

    def test_mode_narrowed_mid_session_costs_at_most_one_request_per_report_and_never_mints(self):
        """After one 403, reports are refused here: a manifest re-read at most once per MANIFEST_RECHECK_SECONDS,
        and no mint, revoke, rotation or retry. Once the mode allows it again, reporting resumes."""
        fake, clock = FakeCoderauth(), Clock()
        credentials = started(fake, clock)
        tools = tools_for(credentials)
        fake.allowed = {"agent:connect"}
        start = len(fake.log)
        with pytest.raises(ToolError, match="403"):
            run(tools.report_task(summary="Denied upstream", link="", state="working"))
        assert fake.upstream()[start:] == [("PATCH", "workspaceagents/me/app-status")]
        for number in range(5):
            with pytest.raises(ToolError, match="'m' does not allow agent:report now"):
                run(tools.report_task(summary=f"Refused here {number}", link="", state="working"))
        assert len(fake.log) == start + 1, "refusals within the recheck interval send nothing"
        clock.now += client_module.MANIFEST_RECHECK_SECONDS
        for number in range(3):
            with pytest.raises(ToolError, match="does not allow agent:report now"):
                run(tools.report_task(summary=f"Rechecked {number}", link="", state="working"))
        assert fake.upstream()[start + 1 :] == [("GET", "workspaceagents/me/manifest")]
        fake.allowed = {"agent:connect", "agent:report"}
        clock.now += client_module.MANIFEST_RECHECK_SECONDS
        assert run(tools.report_task(summary="Allowed again", link="", state="working"))["reported"] is True
        assert fake.upstream()[-2:] == [
            ("GET", "workspaceagents/me/manifest"),
            ("PATCH", "workspaceagents/me/app-status"),
        ]


def test_user_tools_check_the_user_token_at_call_time():
    """Hiding a tool is not authorisation: the user tools refuse without a user token even when invoked directly."""
    config = Config(url=URL, agent_token_source="CODER_AGENT_TOKEN")
    tools = CoderTools(config=config, credentials=None, user=None)
    for call in (tools.get_authenticated_user(), tools.list_workspaces(), tools.get_workspace("main")):
        with pytest.raises(ToolError, match="needs a user token"):
            run(call)


@pytest.mark.parametrize("outage", [503, 500, httpx.ConnectError("connection refused")], ids=["503", "500", "refused"])
def test_server_failures_become_readable_tool_errors(outage):
    """5xx and connection refused mid-session: a tool error naming the failure, after bounded retries, no crash."""
    fake, clock = FakeCoderauth(), Clock()
    tools = tools_for(started(fake, clock))
    fake.outage = outage
    with pytest.raises(ToolError) as caught:
        run(tools.report_task(summary="Building", link="", state="working"))
    message = str(caught.value)
    assert message.startswith("Could not store the status report: ")
    assert (str(outage) if isinstance(outage, int) else "cannot reach http://coderauth.test") in message
    assert "<html>" not in message
    fake.outage = None
    assert run(tools.report_task(summary="Building", link="", state="working"))["reported"] is True
