"""`python -m coderauth.mcp.bootstrap`: the start-up exchange that needs the parent agent token, in its own process.

The long-lived MCP server runs this module once and never holds the parent token itself: a freed string stays
in a process's memory until it is overwritten, so dropping references is not enough. This process reads the
token (the file given by --agent-token-file, else CODER_AGENT_TOKEN), reads the manifest, mints the renewal
token and prints `{"manifest": {...}, "renewal": {...}}` as one JSON line on stdout, then exits.

Failures: one line on stderr and exit status 1 (token refused, coderauth unreachable or answering nonsense) or
2 (the token file). Once the renewal token is minted, every failure revokes it before exiting.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

import anyio

from coderauth.mcp import client as client_module
from coderauth.mcp.answers import BadAnswer
from coderauth.mcp.client import AgentCredentials, ApiError, CoderClient, Unreachable
from coderauth.mcp.config import ConfigError, configure_logging, read_token_file, token_hint

EXIT_TOKEN = 1
EXIT_CONFIG = 2


class BootstrapError(Exception):
    """The single stderr line of a failed exchange."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m coderauth.mcp.bootstrap", description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--source", required=True, help="where the token comes from, named in error messages")
    parser.add_argument("--agent-token-file", help="read the token from this file instead of CODER_AGENT_TOKEN")
    return parser


def _describe(exc: Exception) -> str:
    return f"coderauth answered {exc.describe()}" if isinstance(exc, ApiError) else str(exc)


async def exchange(*, url: str, token: str, source: str) -> dict:
    """Manifest, then renewal mint, under one deadline. Raises BootstrapError; never leaves a minted token live."""
    client = CoderClient(url)
    credentials = AgentCredentials(client)
    name = f"{source} ({token_hint(token)})"
    deadline = client_module.CALL_DEADLINE_SECONDS
    try:
        with anyio.fail_after(deadline):
            try:
                manifest = await credentials.read_manifest(parent_token=token)
            except ApiError as exc:
                raise BootstrapError(f"{name} was rejected by {url}: {exc.describe()}") from None
            except (Unreachable, BadAnswer) as exc:
                raise BootstrapError(f"cannot check {name}: {exc}") from None
            try:
                renewal = await credentials.mint_renewal(parent_token=token)
            except (ApiError, Unreachable, BadAnswer) as exc:
                raise BootstrapError(f"{name} could not mint its child token: {_describe(exc)}") from None
    except TimeoutError:
        await credentials.close()
        raise BootstrapError(f"cannot check {name}: {url} did not answer within {deadline:g} s") from None
    finally:
        await client.aclose()
    return {
        "manifest": manifest,
        "renewal": {
            "id": renewal.id,
            "token": renewal.token,
            "scopes": list(renewal.scopes),
            "expires_at": renewal.expires_at,
        },
    }


async def _run(url: str, token: str, source: str) -> int:
    try:
        answer = await exchange(url=url, token=token, source=source)
    except BootstrapError as exc:
        print(f"coderauth-mcp: {exc}", file=sys.stderr, flush=True)
        return EXIT_TOKEN
    try:
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    except OSError:
        # Nobody will use the renewal token: revoke it rather than leave it live.
        client = CoderClient(url)
        await AgentCredentials(client).revoke_quietly(answer["renewal"]["id"], token=answer["renewal"]["token"])
        await client.aclose()
        print("coderauth-mcp: the start-up exchange could not hand over its answer", file=sys.stderr, flush=True)
        return EXIT_TOKEN
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.agent_token_file:
            token = read_token_file(args.agent_token_file, args.source)
        else:
            token = os.environ.get("CODER_AGENT_TOKEN", "").strip()
            if not token:
                raise ConfigError("CODER_AGENT_TOKEN is missing (set CODER_AGENT_TOKEN or CODER_AGENT_TOKEN_FILE)")
    except ConfigError as exc:
        print(f"coderauth-mcp: {exc}", file=sys.stderr, flush=True)
        return EXIT_CONFIG
    try:
        return anyio.run(_run, args.url, token, args.source)
    except Exception as exc:  # one line, never a traceback (which could show the token in a frame's locals)
        print(f"coderauth-mcp: the start-up exchange failed: {type(exc).__name__}", file=sys.stderr, flush=True)
        return EXIT_TOKEN


if __name__ == "__main__":
    raise SystemExit(main())
