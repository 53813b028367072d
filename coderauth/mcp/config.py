"""Configuration from Coder's environment names, each mirrored by a command-line flag (the flag wins).

The agent token itself is not read here: the long-lived server only learns where it is (a file, or the
CODER_AGENT_TOKEN variable), and the short-lived bootstrap process (bootstrap.py) reads it.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

AGENT_TOOLS = ("coder_report_task", "coder_get_agent", "coder_request_access", "coder_get_access_request")
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
    agent_token_source: str  # the variable or flag it comes from, named in error messages
    agent_token_file: str | None = None  # None: the token is in CODER_AGENT_TOKEN
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
    parser.add_argument("--agent-token", help="refused: a command line is visible to every process (ps)")
    parser.add_argument("--agent-token-file", help="file holding the agent token (env CODER_AGENT_TOKEN_FILE)")
    parser.add_argument("--session-token", help="optional user token for user tools (env CODER_SESSION_TOKEN)")
    parser.add_argument("--app-status-slug", help="app slug of reported statuses (env CODER_MCP_APP_STATUS_SLUG)")
    parser.add_argument("--allowed-tools", help="comma list restricting the tools (env CODER_MCP_ALLOWED_TOOLS)")
    return parser


def read_token_file(path: str, source: str) -> str:
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{source} {path} cannot be read: {exc.strerror or exc}")
    if not token:
        raise ConfigError(f"{source} {path} is empty")
    return token


def _agent_token_source(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[str, str | None]:
    """Where the token is, the first of --agent-token-file, CODER_AGENT_TOKEN, CODER_AGENT_TOKEN_FILE: the
    source's name and the file's path (None for the variable). --agent-token is refused outright."""
    if args.agent_token is not None:
        raise ConfigError(
            "--agent-token is refused: a command line is visible to every process (ps, /proc/<pid>/cmdline); "
            "use CODER_AGENT_TOKEN_FILE or --agent-token-file"
        )
    if args.agent_token_file:
        return "--agent-token-file", args.agent_token_file
    if environ.get("CODER_AGENT_TOKEN", "").strip():
        return "CODER_AGENT_TOKEN", None
    if environ.get("CODER_AGENT_TOKEN_FILE", "").strip():
        return "CODER_AGENT_TOKEN_FILE", environ["CODER_AGENT_TOKEN_FILE"].strip()
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
    agent_source, agent_file = _agent_token_source(args, environ)
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
        agent_token_source=agent_source,
        agent_token_file=agent_file,
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


def configure_logging() -> None:
    """stderr only (stdout is the protocol); our lines at INFO, libraries' at WARNING."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("coderauth-mcp %(levelname)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("coderauth.mcp").setLevel(logging.INFO)
