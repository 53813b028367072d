"""Configuration from Coder's environment names, each mirrored by a command-line flag (the flag wins)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

AGENT_TOOLS = ("coder_report_task", "coder_get_agent")
USER_TOOLS = ("coder_get_authenticated_user", "coder_list_workspaces", "coder_get_workspace")
ALL_TOOLS = AGENT_TOOLS + USER_TOOLS
DEFAULT_APP_STATUS_SLUG = "coder"
# The server's rule for app_slug (agents/apis/agent.py, AgentAppStatusApi.InputSerializer), checked at start-up so a
# bad slug stops the server at once instead of failing every report.
APP_STATUS_SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class ConfigError(Exception):
    """A start-up problem the user must fix; its message is the one line printed on stderr."""


@dataclass(frozen=True)
class Config:
    url: str
    agent_token: str = field(repr=False)
    agent_token_source: str  # the variable or flag it came from, named in error messages
    session_token: str | None = field(default=None, repr=False)
    session_token_source: str | None = None
    app_status_slug: str = DEFAULT_APP_STATUS_SLUG
    allowed_tools: frozenset[str] | None = None  # None: no restriction

    def tool_allowed(self, name: str) -> bool:
        return self.allowed_tools is None or name in self.allowed_tools


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m coderauth.mcp",
        description="MCP server (stdio) for coderauth. Needs only the agent token; a user token adds user tools.",
    )
    parser.add_argument("--url", help="coderauth base URL (env CODER_URL)")
    parser.add_argument("--agent-token", help="agent token (env CODER_AGENT_TOKEN); prefer the env or a file")
    parser.add_argument("--agent-token-file", help="file holding the agent token (env CODER_AGENT_TOKEN_FILE)")
    parser.add_argument("--session-token", help="optional user token for user tools (env CODER_SESSION_TOKEN)")
    parser.add_argument("--app-status-slug", help="app slug of reported statuses (env CODER_MCP_APP_STATUS_SLUG)")
    parser.add_argument("--allowed-tools", help="comma list restricting the tools (env CODER_MCP_ALLOWED_TOOLS)")
    return parser


def _read_token_file(path: str, source: str) -> str:
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{source} {path} cannot be read: {exc.strerror or exc}")
    if not token:
        raise ConfigError(f"{source} {path} is empty")
    return token


def _agent_token(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[str, str]:
    """The first of: --agent-token, --agent-token-file, CODER_AGENT_TOKEN, CODER_AGENT_TOKEN_FILE."""
    if args.agent_token:
        return args.agent_token.strip(), "--agent-token"
    if args.agent_token_file:
        return _read_token_file(args.agent_token_file, "--agent-token-file"), "--agent-token-file"
    if environ.get("CODER_AGENT_TOKEN", "").strip():
        return environ["CODER_AGENT_TOKEN"].strip(), "CODER_AGENT_TOKEN"
    if environ.get("CODER_AGENT_TOKEN_FILE", "").strip():
        path = environ["CODER_AGENT_TOKEN_FILE"].strip()
        return _read_token_file(path, "CODER_AGENT_TOKEN_FILE"), "CODER_AGENT_TOKEN_FILE"
    raise ConfigError("CODER_AGENT_TOKEN is missing (set CODER_AGENT_TOKEN or CODER_AGENT_TOKEN_FILE)")


def _allowed_tools(raw: str | None) -> frozenset[str] | None:
    if raw is None or not raw.strip():
        return None
    names = frozenset(name.strip() for name in raw.split(",") if name.strip())
    unknown = sorted(names - set(ALL_TOOLS))
    if unknown:
        raise ConfigError(
            f"CODER_MCP_ALLOWED_TOOLS names unknown tools: {', '.join(unknown)} (known: {', '.join(ALL_TOOLS)})"
        )
    return names


def _app_status_slug(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    if args.app_status_slug:
        slug, source = args.app_status_slug.strip(), "--app-status-slug"
    else:
        slug, source = environ.get("CODER_MCP_APP_STATUS_SLUG", "").strip(), "CODER_MCP_APP_STATUS_SLUG"
    if not slug:
        return DEFAULT_APP_STATUS_SLUG
    if not re.fullmatch(APP_STATUS_SLUG_PATTERN, slug):
        raise ConfigError(
            f"{source} {slug!r} is not a valid app slug: 1 to 63 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return slug


def load_config(argv: Sequence[str], environ: Mapping[str, str]) -> Config:
    """Flags first, then the environment. Raises ConfigError naming what is missing or wrong."""
    args = _parser().parse_args(list(argv))
    url = (args.url or environ.get("CODER_URL", "")).strip().rstrip("/")
    if not url:
        raise ConfigError("CODER_URL is missing (set CODER_URL or pass --url)")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"CODER_URL must start with http:// or https://, got {url!r}")
    agent_token, agent_source = _agent_token(args, environ)
    if args.session_token:
        session_token, session_source = args.session_token.strip(), "--session-token"
    elif environ.get("CODER_SESSION_TOKEN", "").strip():
        session_token, session_source = environ["CODER_SESSION_TOKEN"].strip(), "CODER_SESSION_TOKEN"
    else:
        session_token, session_source = None, None
    slug = _app_status_slug(args, environ)
    allowed_raw = args.allowed_tools if args.allowed_tools is not None else environ.get("CODER_MCP_ALLOWED_TOOLS")
    return Config(
        url=url,
        agent_token=agent_token,
        agent_token_source=agent_source,
        session_token=session_token,
        session_token_source=session_source,
        app_status_slug=slug,
        allowed_tools=_allowed_tools(allowed_raw),
    )


def token_hint(token: str) -> str:
    """What may appear in a log line: the type prefix and the last four characters, as the server's hint."""
    prefix, sep, _ = token.partition("_")
    head = f"{prefix}_" if sep and len(prefix) <= 4 else ""
    return f"{head}…{token[-4:]}" if len(token) > 8 else "…"
