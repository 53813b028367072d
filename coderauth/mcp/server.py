"""The stdio MCP server: start-up checks, the tools, and a clean exit that revokes its child tokens.

stdout carries the MCP protocol only; every log line goes to stderr and names tokens by hint alone.
The parent agent token never enters this process when it is given by file: the start-up exchange that
needs it runs in a short-lived child process (bootstrap.py), which hands over only the renewal token.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import anyio
import httpx
from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from pydantic import Field

from coderauth.mcp import answers
from coderauth.mcp import client as client_module
from coderauth.mcp.answers import BadAnswer, ChildToken
from coderauth.mcp.client import (
    ACCESS_REQUESTS_PATH,
    AGENT_REPORT,
    AgentCredentials,
    ApiError,
    CoderClient,
    CredentialsRevoked,
    Unreachable,
)
from coderauth.mcp.config import (
    AGENT_TOOLS,
    USER_TOOLS,
    Config,
    ConfigError,
    configure_logging,
    load_config,
    token_hint,
)

logger = logging.getLogger("coderauth.mcp")

SUMMARY_MAX_LENGTH = 160
EXIT_CONFIG = 2
EXIT_TOKEN = 1
# `GET workspaces` is keyset-paginated (the server's page size, 50 by default): at most this many pages are
# read for one tool call. The page size is left to the server, whose maximum an operator may lower.
MAX_WORKSPACE_PAGES = 20
# The bootstrap process gets the exchange's own deadline plus time to start an interpreter.
BOOTSTRAP_START_SECONDS = 15.0

# An access request: what coderauth keeps of the reason (AccessRequest.reason), and how many scopes one names
# at most here (there are far fewer agent scopes): both refused before any request is sent.
REASON_MAX_LENGTH = 500
MAX_REQUESTED_SCOPES = 20
# Waiting for a decision: poll after as long as the request has been waiting, within these bounds, so the
# checks back off 10 s, 20 s, 40 s, then every 60 s without the server keeping any count.
POLL_MIN_SECONDS = 10
POLL_MAX_SECONDS = 60

T = TypeVar("T")

INSTRUCTIONS = (
    "Report what you are doing with coder_report_task: a short summary (at most 160 characters), an optional link, "
    "and a state (working, idle, complete, failure). Report when you start a task, when you finish it or fail, and "
    "when you wait for the user. coder_get_agent tells you the workspace, the permission mode and the scopes you have."
    "\nWhen a task needs an agent scope the mode does not allow now (coderauth answered 403 naming a required scope), "
    "you may ask for it for a few minutes with coder_request_access: the scopes, a reason a person can judge (what "
    "you will do with it and why), and the shortest duration that is enough. A person decides: tell the user what "
    "you asked for and that an admin (or the workspace owner, unless only admins decide) must approve it on the "
    "Access requests page of coderauth's web UI. Then check with coder_get_access_request after poll_after_seconds "
    "(backing off: 10 s, 20 s, 40 s, then every 60 s) and do other work or wait meanwhile; never ask again while a "
    "request is open. Stop waiting when it is denied, revoked or expired, and tell the user. An approval lapses by "
    "itself at expires_at."
)


class StartupError(Exception):
    """A refused or unreachable credential at start-up; the message is the single stderr line (None: the
    bootstrap process already printed it) and `code` the exit status."""

    def __init__(self, message: str | None, *, code: int = EXIT_TOKEN):
        super().__init__(message)
        self.message = message
        self.code = code


def _describe(exc: Exception) -> str:
    if isinstance(exc, ApiError):
        return f"coderauth answered {exc.describe()}"
    if isinstance(exc, BadAnswer):
        return f"coderauth's answer is unusable: {exc}"
    return str(exc)


class CoderTools:
    """The tools' behaviour, apart from MCP registration so each one is a plain coroutine."""

    def __init__(self, *, config: Config, credentials: AgentCredentials, user: dict[str, Any] | None):
        self.config = config
        self.credentials = credentials
        self.user = user
        self._last_report: tuple[str, str, str, str] | None = None

    @staticmethod
    async def _bounded(action: str, call: Callable[[], Awaitable[T]]) -> T:
        """One deadline for the whole tool call (retries, renewals and slow answers included), and every
        upstream failure as a short ToolError."""
        deadline = client_module.CALL_DEADLINE_SECONDS
        try:
            with anyio.fail_after(deadline):
                return await call()
        except TimeoutError:
            raise ToolError(f"Could not {action}: coderauth did not answer within {deadline:g} s.") from None
        except CredentialsRevoked as exc:
            raise ToolError(str(exc)) from None
        except (ApiError, Unreachable, BadAnswer) as exc:
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
        return await self._bounded(action, lambda: self.credentials.client.request("GET", path, token=token))

    async def _workspaces(self, tool: str) -> tuple[list[dict[str, Any]], bool]:
        """Every page of `GET workspaces` up to MAX_WORKSPACE_PAGES, and whether more were left unread.
        A `next` outside this coderauth is refused: the user token goes nowhere else."""
        token = self._require_user_token(tool)
        client = self.credentials.client
        list_url = httpx.URL(f"{client.base_url}/api/v2/workspaces")

        async def read() -> tuple[list[dict[str, Any]], bool]:
            items: list[dict[str, Any]] = []
            url: str | None = "workspaces"
            for _ in range(MAX_WORKSPACE_PAGES):
                page, url = answers.workspace_page(await client.request("GET", url, token=token))
                items.extend(page)
                if url is None:
                    return items, False
                try:
                    outside = httpx.URL(url).copy_with(query=None, fragment=None) != list_url
                except httpx.InvalidURL:
                    outside = True
                if outside:
                    raise BadAnswer("the workspace list: 'next' points outside coderauth")
            return items, True

        return await self._bounded("list workspaces", read)

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
        credentials = self.credentials

        async def send() -> dict[str, Any]:
            # Refused here, not upstream, when the mode lacks agent:report: no mint, no revoke, no retry.
            if not await credentials.may_report():
                raise ToolError(self._report_refusal())
            working = credentials.working
            if working is not None and AGENT_REPORT not in working.scopes:
                await credentials.renew(stale=working)  # the mode allows it again: a working token that holds it
            answer = await credentials.agent_request("PATCH", "workspaceagents/me/app-status", json=body)
            return answers.app_status(answer)

        stored = await self._bounded("store the status report", send)
        self._last_report = report
        return {"reported": True, "app_status": stored}

    def _report_refusal(self) -> str:
        credentials = self.credentials
        if credentials.renewal is not None and AGENT_REPORT not in credentials.renewal.scopes:
            return (
                f"Not reported: the permission mode did not allow {AGENT_REPORT} when the MCP server started, so "
                "its tokens cannot hold it; restart the MCP server once the mode allows it."
            )
        return (
            f"Not reported: the permission mode {credentials.manifest.get('permission_mode')!r} does not allow "
            f"{AGENT_REPORT} now (coder_get_agent shows the current scopes)."
        )

    async def request_access(self, *, scopes: list[str], reason: str, duration_minutes: int) -> dict[str, Any]:
        """POST an access request: one upstream request (plus a renewal). A 409 names the open request and is
        an answer, not an error; a 429 says when to try again."""
        wanted = list(dict.fromkeys(scope.strip() for scope in scopes if isinstance(scope, str) and scope.strip()))
        if not wanted:
            raise ToolError("scopes must name at least one agent scope, such as agent:gitsshkey.")
        if len(wanted) > MAX_REQUESTED_SCOPES:
            raise ToolError(f"scopes names {len(wanted)} scopes; ask for the few the task needs.")
        reason = reason.strip()
        if not reason:
            raise ToolError("reason must say what you will do with the scopes and why; a person reads it to decide.")
        if len(reason) > REASON_MAX_LENGTH:
            raise ToolError(f"reason is {len(reason)} characters; the limit is {REASON_MAX_LENGTH}.")
        if isinstance(duration_minutes, bool) or not isinstance(duration_minutes, int) or duration_minutes < 1:
            raise ToolError("duration_minutes must be a whole number of minutes, at least 1.")
        body = {"scopes": wanted, "reason": reason, "duration_seconds": duration_minutes * 60}
        credentials = self.credentials

        async def send() -> dict[str, Any]:
            try:
                answer = await credentials.agent_request("POST", ACCESS_REQUESTS_PATH, json=body)
            except ApiError as exc:
                if exc.status == 409 and (open_request := answers.open_request_conflict(exc.body)):
                    return self._open_request(open_request)
                if exc.status == 429:
                    wait = f" Try again in {exc.retry_after} s." if exc.retry_after is not None else " Try again later."
                    raise ToolError(
                        f"Could not request access: coderauth answered {exc.describe().rstrip('.')}.{wait}"
                    ) from None
                raise
            return self._access_result(answers.access_request(answer), created=True)

        return await self._bounded("request access", send)

    @staticmethod
    def _open_request(open_request: dict[str, Any]) -> dict[str, Any]:
        """The 409's answer: the open request to follow. Its state is given only when coderauth names it (no
        second request to read it: one upstream request per call)."""
        state = open_request["state"] or "open"
        follow = "it is approved now" if state == "approved" else "ask for more only once it is decided or lapsed"
        note = (
            f"Not sent: this agent already has an open access request ({state}). Follow it with "
            f"coder_get_access_request instead of asking again; {follow}."
        )
        return {"created": False, "id": open_request["id"], "state": state, "note": note}

    async def get_access_request(self, request_id: str) -> dict[str, Any]:
        try:
            checked_id = uuid.UUID(request_id.strip())
        except ValueError:
            raise ToolError(
                "id must be an access request's id (a UUID), as coder_request_access returned it."
            ) from None

        async def read() -> dict[str, Any]:
            answer = await self.credentials.agent_request("GET", f"{ACCESS_REQUESTS_PATH}/{checked_id}")
            return self._access_result(answers.access_request(answer))

        return await self._bounded(f"read access request {checked_id}", read)

    def _access_result(self, request: dict[str, Any], *, created: bool | None = None) -> dict[str, Any]:
        """The checked request, with time_left_seconds when approved, poll_after_seconds when pending, and a note
        telling the assistant what to do next."""
        now = datetime.now(UTC)
        result: dict[str, Any] = {} if created is None else {"created": created}
        result.update(request)
        state, scopes = request["state"], ", ".join(request["scopes"])
        if state == "approved" and "time_left_seconds" not in request:
            expires_at = _parse_time(request.get("expires_at"))
            if expires_at is not None:
                result["time_left_seconds"] = max(0, int((expires_at - now).total_seconds()))
        if state == "pending":
            requested_at = _parse_time(request.get("requested_at"))
            waited = (now - requested_at).total_seconds() if requested_at else 0
            result["poll_after_seconds"] = int(min(POLL_MAX_SECONDS, max(POLL_MIN_SECONDS, waited)))
        result["note"] = self._access_note(result, scopes)
        return result

    def _access_note(self, result: dict[str, Any], scopes: str) -> str:
        state = result["state"]
        if state == "pending":
            owner = self.credentials.manifest.get("owner_username")
            approvers = f"an admin, or the workspace owner{f' {owner}' if owner else ''} unless only admins decide,"
            page = f"{self.config.url}/access-requests/"
            return (
                f"Waiting for a decision on {scopes}: {approvers} must approve it on the Access requests page "
                f"({page}). Tell the user so, then check again with coder_get_access_request after "
                f"{result['poll_after_seconds']} s; do not ask again meanwhile."
            )
        if state == "approved":
            left = result.get("time_left_seconds")
            until = f" for {left} s more" if left is not None else ""
            return (
                f"Approved: the agent may use {scopes}{until} (until {result.get('expires_at')}); it lapses by itself. "
                "Do the task that needed it now, and only that. The grant applies to the agent's own token; this "
                "MCP server's tokens never carry it."
            )
        if state == "denied":
            why = f": {result['decision_reason']}" if result.get("decision_reason") else ""
            return f"Denied{why}. Stop waiting and tell the user; do not ask again unless the user says so."
        if state == "revoked":
            why = f": {result['revoke_reason']}" if result.get("revoke_reason") else ""
            return f"Revoked before it lapsed{why}. Stop using {scopes} and tell the user."
        return (
            "Expired: it was not decided in time, or the approved time has run out. Stop waiting and tell the user; "
            "ask again only if the task still needs it."
        )

    async def get_agent(self) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            answer = await self.credentials.agent_request("GET", "workspaceagents/me/manifest")
            return self.credentials.note_manifest(answer)

        manifest = await self._bounded("read the agent manifest", read)
        return {
            **manifest,
            "can_report": AGENT_REPORT in manifest["scopes"],
            "app_status_slug": self.config.app_status_slug,
        }

    async def get_authenticated_user(self) -> dict[str, Any]:
        answer = await self._user("coder_get_authenticated_user", "read the authenticated user", "users/me")
        return self._checked("read the authenticated user", answers.user, answer)

    async def list_workspaces(self) -> dict[str, Any]:
        items, truncated = await self._workspaces("coder_list_workspaces")
        return {"workspaces": items, "truncated": truncated} if truncated else {"workspaces": items}

    @staticmethod
    def _checked(action: str, check: Callable[[Any], T], answer: Any) -> T:
        try:
            return check(answer)
        except BadAnswer as exc:
            raise ToolError(f"Could not {action}: {_describe(exc)}") from None

    async def get_workspace(self, workspace: str) -> dict[str, Any]:
        """By id, or by name (`name` or `owner/name`); a name shared by several owners must be qualified."""
        tool = "coder_get_workspace"
        workspace = workspace.strip()
        try:
            workspace_id = uuid.UUID(workspace)
        except ValueError:
            workspace_id = None
        if workspace_id is not None:
            action = f"read workspace {workspace}"
            return self._checked(
                action, answers.workspace, await self._user(tool, action, f"workspaces/{workspace_id}")
            )
        owner, _, name = workspace.rpartition("/")
        items, truncated = await self._workspaces(tool)
        candidates = [item for item in items if item["name"] == name and (not owner or item["owner"] == owner)]
        if len(candidates) > 1 and self.user:
            own = [item for item in candidates if item.get("owner") == self.user.get("username")]
            candidates = own or candidates
        if not candidates and truncated:
            raise ToolError(
                f"No workspace named {workspace!r} in the first {MAX_WORKSPACE_PAGES} pages of workspaces visible "
                "to this user; give its id."
            )
        if not candidates:
            raise ToolError(f"No workspace named {workspace!r} is visible to this user.")
        if len(candidates) > 1:
            owners = ", ".join(sorted(f"{item.get('owner')}/{name}" for item in candidates))
            raise ToolError(f"Several workspaces are named {name!r}; give one of: {owners}, or the id.")
        return candidates[0]


def _parse_time(value: str | None) -> datetime | None:
    """An ISO 8601 time from coderauth, aware; None when absent or unreadable (then nothing is computed from it)."""
    try:
        parsed = datetime.fromisoformat(value) if value else None
    except ValueError:
        return None
    return parsed if parsed is None or parsed.tzinfo else parsed.replace(tzinfo=UTC)


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

    async def coder_request_access(
        scopes: Annotated[
            list[str], Field(description="The agent scopes the task needs and the mode does not allow now.")
        ],
        reason: Annotated[
            str, Field(description="What you will do with them and why, at most 500 characters; a person reads it.")
        ],
        duration_minutes: Annotated[
            int, Field(ge=1, description="The shortest time that is enough, in minutes; approval may shorten it.")
        ],
    ) -> dict[str, Any]:
        """Ask a person for agent scopes the permission mode does not allow, for a few minutes. Answers the
        request's id and state (pending until an admin or the workspace owner decides on the Access requests page)
        and a note saying what to do next. One open request at a time: if one is open, its id is returned."""
        return await tools.request_access(scopes=scopes, reason=reason, duration_minutes=duration_minutes)

    async def coder_get_access_request(
        id: Annotated[str, Field(description="The access request's id, as coder_request_access returned it.")],
    ) -> dict[str, Any]:
        """An access request's state (pending, approved, denied, revoked, expired), its time_left_seconds when
        approved, and what to do next. While pending, call again after poll_after_seconds (10 s, 20 s, 40 s, then
        every 60 s); stop once it is denied, revoked or expired."""
        return await tools.get_access_request(id)

    async def coder_get_authenticated_user() -> dict[str, Any]:
        """The user whose token this MCP server was given: id, username and roles."""
        return await tools.get_authenticated_user()

    async def coder_list_workspaces() -> dict[str, Any]:
        """The workspaces the user may see, with their agents and permission modes."""
        return await tools.list_workspaces()

    async def coder_get_workspace(
        workspace: Annotated[str, Field(description="A workspace id, a name, or owner/name.")],
    ) -> dict[str, Any]:
        """One workspace with its agents and permission mode."""
        return await tools.get_workspace(workspace)

    functions = {
        "coder_report_task": coder_report_task,
        "coder_get_agent": coder_get_agent,
        "coder_request_access": coder_request_access,
        "coder_get_access_request": coder_get_access_request,
        "coder_get_authenticated_user": coder_get_authenticated_user,
        "coder_list_workspaces": coder_list_workspaces,
        "coder_get_workspace": coder_get_workspace,
    }
    for name in enabled:
        server.add_tool(functions[name], name=name)
    return server


def _bootstrap_command(config: Config) -> list[str]:
    command = [sys.executable, "-m", "coderauth.mcp.bootstrap", "--url", config.url, "--source"]
    command.append(config.agent_token_source)
    if config.agent_token_file:
        command += ["--agent-token-file", config.agent_token_file]
    return command


def _bootstrap_env() -> dict[str, str]:
    """This process's environment, with the directory holding this package first on PYTHONPATH so the child
    imports the same code however this one was started."""
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    return env


async def bootstrap(config: Config) -> tuple[ChildToken, dict[str, Any]]:
    """Run the start-up exchange that needs the parent token in a child process; take its renewal token."""
    deadline = client_module.CALL_DEADLINE_SECONDS + BOOTSTRAP_START_SECONDS
    try:
        with anyio.fail_after(deadline):
            done = await anyio.run_process(
                _bootstrap_command(config), stdin=subprocess.DEVNULL, check=False, env=_bootstrap_env()
            )
    except TimeoutError:
        raise StartupError(f"the start-up exchange with {config.url} took longer than {deadline:g} s") from None
    if done.stderr:
        sys.stderr.write(done.stderr.decode("utf-8", "replace"))
        sys.stderr.flush()
    if done.returncode != 0:
        raise StartupError(None, code=done.returncode if done.returncode in (EXIT_TOKEN, EXIT_CONFIG) else EXIT_TOKEN)
    try:
        handed_over = json.loads(done.stdout)
        renewal = answers.child_token(handed_over["renewal"], what="the renewal token")
        return renewal, handed_over["manifest"]
    except (ValueError, TypeError, KeyError, BadAnswer):
        raise StartupError("the start-up exchange handed over no usable renewal token") from None


async def start(config: Config, credentials: AgentCredentials) -> dict[str, Any] | None:
    """Check the user token, then (in the bootstrap process) the agent token, then mint the working token.
    Raises StartupError. The caller revokes the renewal token whatever happens after it was minted."""
    client = credentials.client
    user = None
    if config.session_token:
        user_name = f"{config.session_token_source} ({token_hint(config.session_token)})"
        try:
            with anyio.fail_after(client_module.CALL_DEADLINE_SECONDS):
                user = answers.user(await client.request("GET", "users/me", token=config.session_token))
        except ApiError as exc:
            raise StartupError(f"{user_name} was rejected by {config.url}: {exc.describe()}") from None
        except (Unreachable, BadAnswer) as exc:
            raise StartupError(f"cannot check {user_name}: {exc}") from None
        except TimeoutError:
            raise StartupError(f"cannot check {user_name}: no answer within the deadline") from None
    renewal, manifest = await bootstrap(config)
    credentials.renewal = renewal  # adopted first, so a failure below still revokes it
    agent_name = f"{config.agent_token_source}'s renewal token"
    try:
        credentials.adopt(renewal=renewal, manifest=manifest)
        with anyio.fail_after(client_module.CALL_DEADLINE_SECONDS):
            await credentials.start_working()
    except TimeoutError:
        raise StartupError(f"{agent_name} could not mint the working token: no answer within the deadline") from None
    except (ApiError, Unreachable, BadAnswer, CredentialsRevoked) as exc:
        raise StartupError(f"{agent_name} could not mint the working token: {_describe(exc)}") from None
    return user


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
    credentials = AgentCredentials(client)
    try:
        try:
            user = await start(config, credentials)
        except StartupError as exc:
            with anyio.CancelScope(shield=True):
                await credentials.close(announce=False)
            if exc.message:
                print(f"coderauth-mcp: {exc.message}", file=sys.stderr, flush=True)
            return exc.code
        except Exception as exc:  # one line, never a traceback
            with anyio.CancelScope(shield=True):
                await credentials.close(announce=False)
            print(f"coderauth-mcp: start-up failed: {type(exc).__name__}", file=sys.stderr, flush=True)
            return EXIT_TOKEN
        finally:
            # Not needed after start-up. When the token was given in CODER_AGENT_TOKEN, the kernel still keeps
            # the initial environment (/proc/<pid>/environ): docs/mcp.md says so and recommends the file.
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
        with anyio.CancelScope(shield=True):
            await credentials.close()
        await client.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()
    try:
        config = load_config(sys.argv[1:] if argv is None else argv, os.environ)
    except ConfigError as exc:
        print(f"coderauth-mcp: {exc}", file=sys.stderr, flush=True)
        return EXIT_CONFIG
    return anyio.run(serve, config)
