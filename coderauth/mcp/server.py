"""The stdio MCP server: start-up checks, the tools, and a clean exit that revokes its child tokens.

stdout carries the MCP protocol only; every log line goes to stderr and names tokens by hint alone.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import uuid
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import anyio
from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from pydantic import Field

from coderauth.mcp.client import AGENT_REPORT, AgentCredentials, ApiError, CoderClient, Unreachable
from coderauth.mcp.config import AGENT_TOOLS, USER_TOOLS, Config, ConfigError, load_config, token_hint

logger = logging.getLogger("coderauth.mcp")

SUMMARY_MAX_LENGTH = 160
EXIT_CONFIG = 2
EXIT_TOKEN = 1

INSTRUCTIONS = (
    "Report what you are doing with coder_report_task: a short summary (at most 160 characters), an optional link, "
    "and a state (working, idle, complete, failure). Report when you start a task, when you finish it or fail, and "
    "when you wait for the user. coder_get_agent tells you the workspace, the permission mode and the scopes you have."
)


class StartupError(Exception):
    """A refused or unreachable credential at start-up; the message is the single stderr line."""


def _describe(exc: Exception) -> str:
    if isinstance(exc, ApiError):
        return f"coderauth answered {exc.describe()}"
    return str(exc)


class CoderTools:
    """The tools' behaviour, apart from MCP registration so each one is a plain coroutine."""

    def __init__(self, *, config: Config, credentials: AgentCredentials, user: dict[str, Any] | None):
        self.config = config
        self.credentials = credentials
        self.user = user
        self._last_report: tuple[str, str, str, str] | None = None

    async def _agent(self, action: str, method: str, path: str, *, json: Any = None) -> Any:
        try:
            return await self.credentials.agent_request(method, path, json=json)
        except (ApiError, Unreachable) as exc:
            raise ToolError(f"Could not {action}: {_describe(exc)}") from None

    def _require_user_token(self, tool: str) -> str:
        # Hiding a tool is not authorisation: every user tool checks again when called.
        if not self.config.session_token:
            raise ToolError(f"{tool} needs a user token; start the MCP server with CODER_SESSION_TOKEN to use it.")
        if not self.config.tool_allowed(tool):
            raise ToolError(f"{tool} is not in CODER_MCP_ALLOWED_TOOLS.")
        return self.config.session_token

    async def _user(self, tool: str, action: str, path: str) -> Any:
        token = self._require_user_token(tool)
        try:
            return await self.credentials.client.request("GET", path, token=token)
        except (ApiError, Unreachable) as exc:
            raise ToolError(f"Could not {action}: {_describe(exc)}") from None

    async def report_task(self, *, summary: str, link: str, state: str) -> dict[str, Any]:
        summary = summary.strip()
        if not summary:
            raise ToolError("summary must not be empty.")
        if len(summary) > SUMMARY_MAX_LENGTH:
            raise ToolError(
                f"summary is {len(summary)} characters; the limit is {SUMMARY_MAX_LENGTH}. Shorten it and report again."
            )
        report = (self.config.app_status_slug, summary, link.strip(), state)
        if report == self._last_report:
            return {"reported": False, "note": "Unchanged since the last report, so it was not sent again."}
        body = {"app_slug": report[0], "message": report[1], "uri": report[2], "state": report[3]}
        stored = await self._agent("store the status report", "PATCH", "workspaceagents/me/app-status", json=body)
        self._last_report = report
        return {"reported": True, "app_status": stored}

    async def get_agent(self) -> dict[str, Any]:
        manifest = await self._agent("read the agent manifest", "GET", "workspaceagents/me/manifest")
        return {
            **manifest,
            "can_report": AGENT_REPORT in (manifest.get("scopes") or []),
            "app_status_slug": self.config.app_status_slug,
        }

    async def get_authenticated_user(self) -> dict[str, Any]:
        return await self._user("coder_get_authenticated_user", "read the authenticated user", "users/me")

    async def list_workspaces(self) -> list[dict[str, Any]]:
        return await self._user("coder_list_workspaces", "list workspaces", "workspaces")

    async def get_workspace(self, workspace: str) -> dict[str, Any]:
        """By id, or by name (`name` or `owner/name`); a name shared by several owners must be qualified."""
        tool = "coder_get_workspace"
        workspace = workspace.strip()
        try:
            workspace_id = uuid.UUID(workspace)
        except ValueError:
            workspace_id = None
        if workspace_id is not None:
            return await self._user(tool, f"read workspace {workspace}", f"workspaces/{workspace_id}")
        owner, _, name = workspace.rpartition("/")
        candidates = [
            item
            for item in await self._user(tool, "list workspaces", "workspaces")
            if item.get("name") == name and (not owner or item.get("owner") == owner)
        ]
        if len(candidates) > 1 and self.user:
            own = [item for item in candidates if item.get("owner") == self.user.get("username")]
            candidates = own or candidates
        if not candidates:
            raise ToolError(f"No workspace named {workspace!r} is visible to this user.")
        if len(candidates) > 1:
            owners = ", ".join(sorted(f"{item.get('owner')}/{name}" for item in candidates))
            raise ToolError(f"Several workspaces are named {name!r}; give one of: {owners}, or the id.")
        return candidates[0]


def build_server(tools: CoderTools) -> FastMCP:
    """A FastMCP server listing the agent tools, the user tools only with a user token, within the allow-list."""
    config = tools.config
    server = FastMCP(name="coderauth", instructions=INSTRUCTIONS, log_level="WARNING")
    enabled = [name for name in AGENT_TOOLS if config.tool_allowed(name)]
    if config.session_token:
        enabled += [name for name in USER_TOOLS if config.tool_allowed(name)]

    async def coder_report_task(
        summary: Annotated[str, Field(description="What you are doing, at most 160 characters.")],
        state: Annotated[
            Literal["working", "idle", "complete", "failure"],
            Field(description="working while busy, idle when waiting for the user, complete or failure when done."),
        ],
        link: Annotated[str, Field(description="An optional URL relevant to the task (a PR, a preview).")] = "",
    ) -> dict[str, Any]:
        """Report the task you are working on to the workspace's web UI, as the agent's app status."""
        return await tools.report_task(summary=summary, link=link, state=state)

    async def coder_get_agent() -> dict[str, Any]:
        """The workspace agent you run in: its workspace, owner, permission mode and the scopes allowed now."""
        return await tools.get_agent()

    async def coder_get_authenticated_user() -> dict[str, Any]:
        """The user whose token this MCP server was given: id, username and roles."""
        return await tools.get_authenticated_user()

    async def coder_list_workspaces() -> dict[str, Any]:
        """The workspaces the user may see, with their agents and permission modes."""
        return {"workspaces": await tools.list_workspaces()}

    async def coder_get_workspace(
        workspace: Annotated[str, Field(description="A workspace id, a name, or owner/name.")],
    ) -> dict[str, Any]:
        """One workspace with its agents and permission mode."""
        return await tools.get_workspace(workspace)

    functions = {
        "coder_report_task": coder_report_task,
        "coder_get_agent": coder_get_agent,
        "coder_get_authenticated_user": coder_get_authenticated_user,
        "coder_list_workspaces": coder_list_workspaces,
        "coder_get_workspace": coder_get_workspace,
    }
    for name in enabled:
        server.add_tool(functions[name], name=name)
    return server


async def start(config: Config, client: CoderClient) -> tuple[AgentCredentials, dict[str, Any] | None]:
    """Check the agent token, then the user token, then mint the child tokens. Raises StartupError."""
    credentials = AgentCredentials(client)
    agent_name = f"{config.agent_token_source} ({token_hint(config.agent_token)})"
    try:
        await credentials.read_manifest(parent_token=config.agent_token)
    except ApiError as exc:
        raise StartupError(f"{agent_name} was rejected by {config.url}: {exc.describe()}")
    except Unreachable as exc:
        raise StartupError(f"cannot check {agent_name}: {exc}")
    user = None
    if config.session_token:
        user_name = f"{config.session_token_source} ({token_hint(config.session_token)})"
        try:
            user = await client.request("GET", "users/me", token=config.session_token)
        except ApiError as exc:
            raise StartupError(f"{user_name} was rejected by {config.url}: {exc.describe()}")
        except Unreachable as exc:
            raise StartupError(f"cannot check {user_name}: {exc}")
    try:
        await credentials.mint(parent_token=config.agent_token)
    except (ApiError, Unreachable) as exc:
        await credentials.close()
        raise StartupError(f"{agent_name} could not mint its child token: {_describe(exc)}")
    return credentials, user


async def _revoke_on_signal(credentials: AgentCredentials) -> None:
    """SIGTERM/SIGINT: revoke the child tokens, then leave at once.

    The stdio reader blocks in a worker thread that cancellation cannot interrupt, so after the revocation
    the process exits directly instead of waiting for stdin.
    """
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            logger.info("%s received; revoking the child tokens", signal.Signals(signum).name)
            with anyio.move_on_after(10):
                await credentials.close()
            logging.shutdown()
            os._exit(0)


async def serve(config: Config) -> int:
    client = CoderClient(config.url)
    credentials: AgentCredentials | None = None
    try:
        try:
            credentials, user = await start(config, client)
        except StartupError as exc:
            print(f"coderauth-mcp: {exc}", file=sys.stderr, flush=True)
            return EXIT_TOKEN
        # The parent agent token is not needed after start-up: drop every reference we hold.
        config = dataclasses.replace(config, agent_token="")
        for name in ("CODER_AGENT_TOKEN", "CODER_AGENT_TOKEN_FILE"):
            os.environ.pop(name, None)
        tools = CoderTools(config=config, credentials=credentials, user=user)
        server = build_server(tools)
        manifest = credentials.manifest
        logger.info(
            "ready: agent %s of workspace %s (mode %s), child token scopes %s, tools %s",
            manifest.get("agent_name"),
            manifest.get("workspace_name"),
            manifest.get("permission_mode"),
            ", ".join(credentials.working.scopes),
            ", ".join(tool.name for tool in await server.list_tools()),
        )
        async with anyio.create_task_group() as task_group:
            if sys.platform != "win32":  # no signal receivers there; stdin EOF still exits cleanly
                task_group.start_soon(_revoke_on_signal, credentials)
            await server.run_stdio_async()  # returns when stdin reaches EOF
            task_group.cancel_scope.cancel()
        return 0
    finally:
        if credentials is not None:
            with anyio.CancelScope(shield=True):
                await credentials.close()
        await client.aclose()


def configure_logging() -> None:
    """stderr only (stdout is the protocol); our lines at INFO, libraries' at WARNING."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("coderauth-mcp %(levelname)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logger.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()
    try:
        config = load_config(sys.argv[1:] if argv is None else argv, os.environ)
    except ConfigError as exc:
        print(f"coderauth-mcp: {exc}", file=sys.stderr, flush=True)
        return EXIT_CONFIG
    return anyio.run(serve, config)
