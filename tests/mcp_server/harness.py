"""Drive `python -m coderauth.mcp` as an assistant would: the SDK's real stdio client, in a subprocess
whose environment holds only what the test gives it (plus the SDK's short list: HOME, PATH, USER …)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from django.db import connection
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 60


def server_env(**coder_vars: str) -> dict[str, str]:
    """PYTHONPATH so the subprocess finds this checkout, and the CODER_* variables the test gives. No Django."""
    env = {"PYTHONPATH": str(REPO_ROOT)}
    env.update(coder_vars)
    return env


def run_session(env: dict[str, str], scenario: Callable[[ClientSession], Awaitable[Any]], *, errlog_path: Path) -> Any:
    """Start the server, initialize a client session, run the scenario, then close stdin (a clean exit)."""

    async def main() -> Any:
        params = StdioServerParameters(command=sys.executable, args=["-m", "coderauth.mcp"], env=env, cwd=REPO_ROOT)
        with errlog_path.open("a") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write):
                async with ClientSession(read, write) as session:
                    with anyio.fail_after(START_TIMEOUT_SECONDS):
                        await session.initialize()
                    return await scenario(session)

    return asyncio.run(main())


def run_server_process(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """Run the server with stdin closed, for start-up failures."""
    return subprocess.run(
        [sys.executable, "-m", "coderauth.mcp", *args],
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_SECONDS,
    )


async def in_db(function: Callable[[], Any]) -> Any:
    """Run ORM code from inside the async scenario: in a worker thread, closing that thread's connection."""

    def call() -> Any:
        try:
            return function()
        finally:
            connection.close()

    return await anyio.to_thread.run_sync(call)


def tool_names(listing) -> list[str]:
    return sorted(tool.name for tool in listing.tools)


def structured(result) -> dict[str, Any]:
    """The tool's JSON result; fails with the error text when the call was a tool error."""
    assert not result.isError, text_of(result)
    return result.structuredContent or json.loads(text_of(result))


def text_of(result) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)
