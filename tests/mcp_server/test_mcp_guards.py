"""The MCP server's tool gating, pinned twice: a user tool re-checks its user token and the allow-list at call
time, and sends nothing upstream when either check refuses."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from mcp.server.fastmcp.exceptions import ToolError

from coderauth.mcp.client import CoderClient
from coderauth.mcp.config import Config
from coderauth.mcp.server import CoderTools

URL = "http://coderauth.test"
USER_TOKEN = "cdu_user00000000000000000000000000000000"


class _Credentials:
    """Just the user-facing client the user tools call, counting every request that would leave the process."""

    def __init__(self):
        self.requests: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return httpx.Response(200, json={"id": 1, "username": "owner", "roles": ["member"]})

        self.client = CoderClient(URL, transport=httpx.MockTransport(handler))


def _tools(**config) -> tuple[CoderTools, _Credentials]:
    credentials = _Credentials()
    tools = CoderTools(
        config=Config(url=URL, agent_token_source="CODER_AGENT_TOKEN", **config),
        credentials=credentials,
        user=None,
    )
    return tools, credentials


def test_without_a_user_token_no_user_request_leaves_the_server():
    tools, credentials = _tools()
    with pytest.raises(ToolError, match="CODER_SESSION_TOKEN"):
        asyncio.run(tools.get_authenticated_user())
    assert credentials.requests == []


def test_a_user_tool_outside_the_allow_list_is_refused_even_with_a_user_token():
    tools, credentials = _tools(session_token=USER_TOKEN, allowed_tools=frozenset({"coder_report_task"}))
    with pytest.raises(ToolError, match="CODER_MCP_ALLOWED_TOOLS"):
        asyncio.run(tools.get_authenticated_user())
    assert credentials.requests == []


def test_an_allowed_user_tool_sends_the_user_token_and_only_that():
    tools, credentials = _tools(session_token=USER_TOKEN)
    asyncio.run(tools.get_authenticated_user())
    assert [request.headers["Authorization"] for request in credentials.requests] == [f"Bearer {USER_TOKEN}"]
