"""The elevation tools without coderauth: coder_request_access and coder_get_access_request against a real HTTP
server on loopback that answers as coderauth's access-request routes would, or wrongly."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from mcp.server.fastmcp.exceptions import ToolError

from coderauth.mcp.config import AGENT_TOOLS, load_config
from coderauth.mcp.server import INSTRUCTIONS, CoderTools, build_server
from tests.mcp_server.test_mcp_upstream import tools_against
from tests.mcp_server.upstream import MANIFEST, Upstream, send_json

REQUESTS = "/api/v2/workspaceagents/me/access-requests"
CREATE = ("POST", REQUESTS)
REQUEST_ID = str(uuid.uuid4())
DETAIL = ("GET", f"{REQUESTS}/{REQUEST_ID}")


@pytest.fixture
def upstream():
    with Upstream() as running:
        yield running


def stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def access_request(state: str = "pending", **fields) -> dict:
    now = datetime.now(UTC)
    body = {
        "id": REQUEST_ID,
        "state": state,
        "scopes": ["agent:gitsshkey"],
        "reason": "Push the fix branch",
        "duration_seconds": 600,
        "requested_at": stamp(now),
        "expires_at": None,
        "agent_id": MANIFEST["agent_id"],
        "workspace_id": MANIFEST["workspace_id"],
    }
    return {**body, **fields}


def recording(status: int, body, *, headers: dict[str, str] | None = None, into: list | None = None):
    """An answer that keeps each request's JSON body in `into`, with extra response headers."""

    def answer(handler) -> None:
        if into is not None:
            into.append(json.loads(handler.body))
        content = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(content)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(content)

    return answer


def ask(tools: CoderTools, scopes=("agent:gitsshkey",), reason="Push the fix branch", duration_minutes=10) -> dict:
    return asyncio.run(tools.request_access(scopes=list(scopes), reason=reason, duration_minutes=duration_minutes))


def follow(tools: CoderTools, request_id: str = REQUEST_ID) -> dict:
    return asyncio.run(tools.get_access_request(request_id))


def sent(upstream: Upstream, route: tuple[str, str]) -> int:
    return sum(1 for method, path, _ in upstream.seen if (method, path) == route)


class TestRequestAccess:
    def test_request_is_posted_once_with_the_working_token_and_says_what_to_do_next(self, upstream):
        bodies: list = []
        upstream.routes[CREATE] = recording(201, access_request(), into=bodies)
        tools = tools_against(upstream)
        result = ask(tools, scopes=["agent:gitsshkey", " agent:gitsshkey "], duration_minutes=5)
        assert bodies == [{"scopes": ["agent:gitsshkey"], "reason": "Push the fix branch", "duration_seconds": 300}]
        (token,) = [token for method, path, token in upstream.seen if (method, path) == CREATE]
        assert token == tools.credentials.working.token, "asked with the working token, never the parent"
        assert (result["created"], result["id"], result["state"]) == (True, REQUEST_ID, "pending")
        assert result["poll_after_seconds"] == 10
        assert "Access requests page" in result["note"] and f"{upstream.url}/access-requests/" in result["note"]
        assert "coder_get_access_request" in result["note"] and MANIFEST["owner_username"] in result["note"]

    def test_open_request_conflict_returns_its_id_not_an_error(self, upstream):
        """One open request per agent: the 409 names it, and the assistant gets an id it can follow."""
        open_id = str(uuid.uuid4())
        upstream.routes[CREATE] = send_json(409, {"detail": "This agent already has an open request.", "id": open_id})
        result = ask(tools_against(upstream))
        assert (result["created"], result["id"], result["state"]) == (False, open_id, "open")
        assert "coder_get_access_request" in result["note"] and "already has an open access request" in result["note"]
        assert sent(upstream, CREATE) == 1

    def test_conflict_that_names_its_state_passes_it_on(self, upstream):
        upstream.routes[CREATE] = send_json(409, {"detail": "Open.", "id": REQUEST_ID, "state": "approved"})
        result = ask(tools_against(upstream))
        assert (result["id"], result["state"]) == (REQUEST_ID, "approved")

    def test_conflict_without_an_id_is_a_tool_error(self, upstream):
        upstream.routes[CREATE] = send_json(409, {"detail": "Something else clashed."})
        with pytest.raises(ToolError, match="^Could not request access: coderauth answered 409 Something else"):
            ask(tools_against(upstream))

    def test_rate_limit_is_a_tool_error_naming_the_wait_and_is_not_retried(self, upstream):
        upstream.routes[CREATE] = recording(429, {"detail": "Too many access requests."}, headers={"Retry-After": "17"})
        with pytest.raises(
            ToolError,
            match=r"^Could not request access: coderauth answered 429 Too many access requests\. Try again in 17 s\.$",
        ):
            ask(tools_against(upstream))
        assert sent(upstream, CREATE) == 1

    def test_invalid_request_is_a_tool_error_with_coderauths_reason(self, upstream):
        upstream.routes[CREATE] = send_json(
            400, {"detail": "Invalid input.", "scopes": ["Already allowed by the mode 'default': agent:report."]}
        )
        with pytest.raises(ToolError, match="400 Invalid input. scopes: Already allowed by the mode 'default'"):
            ask(tools_against(upstream), scopes=["agent:report"])

    def test_an_unknown_scope_is_named_in_the_tool_error(self, upstream):
        """A list field's errors come keyed by position; the message keeps the text, not the nesting."""
        upstream.routes[CREATE] = send_json(
            400, {"detail": "Invalid input.", "scopes": {"0": ['"agent:root" is not a valid choice.']}}
        )
        with pytest.raises(ToolError, match='400 Invalid input. scopes: "agent:root" is not a valid choice.$'):
            ask(tools_against(upstream), scopes=["agent:root"])

    @pytest.mark.parametrize("status", [502, 503, 504])
    def test_a_post_is_never_repeated_no_amplification(self, upstream, status):
        """A request that may have been stored is not sent again: one upstream request per call."""
        upstream.routes[CREATE] = send_json(status, {"detail": "bad gateway"})
        with pytest.raises(ToolError, match=f"^Could not request access: coderauth answered {status}"):
            ask(tools_against(upstream))
        assert sent(upstream, CREATE) == 1

    @pytest.mark.parametrize(
        ("arguments", "message"),
        [
            ({"scopes": []}, "scopes must name at least one agent scope"),
            ({"scopes": ["  "]}, "scopes must name at least one agent scope"),
            ({"scopes": [f"agent:s{n}" for n in range(21)]}, "names 21 scopes"),
            ({"reason": "   "}, "reason must say what you will do"),
            ({"reason": "x" * 501}, "reason is 501 characters; the limit is 500"),
            ({"duration_minutes": 0}, "duration_minutes must be a whole number of minutes, at least 1"),
        ],
        ids=["no-scopes", "blank-scope", "too-many-scopes", "blank-reason", "long-reason", "zero-minutes"],
    )
    def test_bad_arguments_are_refused_before_any_request(self, upstream, arguments, message):
        upstream.routes[CREATE] = send_json(201, access_request())
        tools = tools_against(upstream)
        with pytest.raises(ToolError, match=message):
            ask(tools, **arguments)
        assert sent(upstream, CREATE) == 0

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ([access_request()], "expected a JSON object, got a list"),
            (access_request(state="granted"), "'state' is not one of"),
            (access_request(id="42"), "'id' is missing or not a UUID"),
            (access_request(scopes="agent:gitsshkey"), "'scopes' is missing or not a list of strings"),
            (access_request(expires_at=5), "'expires_at' is missing or not a string"),
            (access_request(duration_seconds="600"), "'duration_seconds' is not a number of seconds"),
        ],
        ids=["list", "unknown-state", "bad-id", "scopes-string", "expires-number", "duration-string"],
    )
    def test_answer_of_the_wrong_shape_is_a_tool_error(self, upstream, body, message):
        upstream.routes[CREATE] = send_json(201, body)
        with pytest.raises(ToolError, match=f"^Could not request access: coderauth's answer is unusable: .*{message}"):
            ask(tools_against(upstream))


class TestGetAccessRequest:
    def test_approved_request_has_its_time_left(self, upstream):
        expires_at = datetime.now(UTC) + timedelta(minutes=10)
        upstream.routes[DETAIL] = send_json(200, access_request("approved", expires_at=stamp(expires_at)))
        result = follow(tools_against(upstream))
        assert (result["id"], result["state"], result["scopes"]) == (REQUEST_ID, "approved", ["agent:gitsshkey"])
        assert 0 < result["time_left_seconds"] <= 600
        assert result["note"].startswith("Approved: the agent may use agent:gitsshkey for ")
        assert "poll_after_seconds" not in result

    def test_coderauths_own_time_left_is_preferred_to_the_local_clock(self, upstream):
        """The MCP server's clock may be off; coderauth's count, when it gives one, is the one passed on."""
        expires_at = datetime.now(UTC) + timedelta(hours=5)
        body = access_request("approved", expires_at=stamp(expires_at), time_left_seconds=42)
        upstream.routes[DETAIL] = send_json(200, body)
        assert follow(tools_against(upstream))["time_left_seconds"] == 42

    @pytest.mark.parametrize(("waited", "poll_after"), [(0, 10), (15, 15), (25, 25), (45, 45), (300, 60)])
    def test_polling_backs_off_with_the_time_waited(self, upstream, waited, poll_after):
        """10 s, 20 s, 40 s, then every 60 s, from the request's age alone: no count kept anywhere."""
        requested_at = datetime.now(UTC) - timedelta(seconds=waited)
        upstream.routes[DETAIL] = send_json(200, access_request(requested_at=stamp(requested_at)))
        result = follow(tools_against(upstream))
        assert result["poll_after_seconds"] in (poll_after, poll_after + 1)  # a second may pass in between
        assert f"after {result['poll_after_seconds']} s" in result["note"]

    @pytest.mark.parametrize(
        ("state", "fields", "note"),
        [
            ("denied", {"decision_reason": "Use the staging key"}, "Denied: Use the staging key. Stop waiting"),
            ("revoked", {"decision_reason": "Fine", "revoke_reason": "Done early"}, "Revoked before it lapsed: Done"),
            ("revoked", {"decision_reason": "Fine for ten minutes"}, "Revoked before it lapsed. Stop using"),
            ("expired", {}, "Expired: it was not decided in time, or the approved time has run out. Stop waiting"),
        ],
    )
    def test_final_states_tell_the_assistant_to_stop(self, upstream, state, fields, note):
        upstream.routes[DETAIL] = send_json(200, access_request(state, **fields))
        result = follow(tools_against(upstream))
        assert result["state"] == state and result["note"].startswith(note)
        assert "time_left_seconds" not in result and "poll_after_seconds" not in result

    def test_id_that_is_not_a_uuid_is_refused_before_any_request(self, upstream):
        tools = tools_against(upstream)
        before = len(upstream.seen)
        for bad in ("42", "../tokens", ""):
            with pytest.raises(ToolError, match="id must be an access request's id"):
                follow(tools, bad)
        assert len(upstream.seen) == before

    def test_another_agents_or_unknown_request_is_a_tool_error(self, upstream):
        with pytest.raises(ToolError, match=f"^Could not read access request {REQUEST_ID}: coderauth answered 404"):
            follow(tools_against(upstream))
        assert sent(upstream, DETAIL) == 1


class TestListing:
    def listed(self, **environ) -> list[str]:
        config = load_config([], {"CODER_URL": "http://x", "CODER_AGENT_TOKEN": "a", **environ})
        tools = CoderTools(config=config, credentials=None, user=None)
        return sorted(tool.name for tool in asyncio.run(build_server(tools).list_tools()))

    def test_the_elevation_tools_are_agent_tools_listed_by_default(self):
        assert {"coder_request_access", "coder_get_access_request"} <= set(AGENT_TOOLS)
        assert self.listed() == sorted(AGENT_TOOLS)

    def test_allowed_tools_can_leave_them_out_or_keep_only_them(self):
        assert self.listed(CODER_MCP_ALLOWED_TOOLS="coder_report_task,coder_get_agent") == [
            "coder_get_agent",
            "coder_report_task",
        ]
        assert self.listed(CODER_MCP_ALLOWED_TOOLS="coder_get_access_request") == ["coder_get_access_request"]

    def test_instructions_tell_the_assistant_how_to_wait(self):
        for phrase in ("coder_request_access", "Access requests page", "10 s, 20 s, 40 s, then every 60 s", "denied"):
            assert phrase in INSTRUCTIONS
