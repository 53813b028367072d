"""What the running MCP server holds, read from outside: its memory (/proc/<pid>/mem), its initial environment
(/proc/<pid>/environ), and what a thief who copies a token out of that memory can do with it."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.urls import reverse

from agents.models import AgentToken
from agents.services.tokens import agent_token_issue, agent_token_revoke
from audit.models import AuditEvent
from core import tokens
from tests.helpers.clients import client_for_agent_token
from tests.helpers.factories import AgentFactory, UserFactory, WorkspaceFactory
from tests.mcp_server.harness import in_db, run_session, server_env, structured, text_of

pytestmark = pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux /proc")

AGENT_TOKEN_PATTERN = re.compile(rb"cda_[0-9A-Za-z]{36}")
CHUNK_BYTES = 16 * 1024 * 1024
OVERLAP_BYTES = 256  # longer than any encoded token, so one spanning two chunks is still seen


@pytest.fixture
def owner(transactional_db):
    return UserFactory()


@pytest.fixture
def issued(owner):
    agent = AgentFactory(workspace=WorkspaceFactory(owner=owner))
    return agent_token_issue(actor=owner, agent=agent, name="workspace agent")


def server_pid() -> int:
    """The `python -m coderauth.mcp` child of this test process (the bootstrap process has exited by now)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and argv[1:3] == [b"-m", b"coderauth.mcp"]:
            found.append(int(entry.name))
    assert len(found) == 1, found
    return found[0]


def memory_of(pid: int) -> Iterator[bytes]:
    """Every readable mapping of the process, in overlapping chunks; unreadable ranges are skipped."""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            fields = line.split()
            if not fields[1].startswith("r") or fields[-1] in ("[vvar]", "[vsyscall]"):
                continue
            start, end = (int(bound, 16) for bound in fields[0].split("-"))
            for offset in range(start, end, CHUNK_BYTES):
                try:
                    mem.seek(offset)
                    yield mem.read(min(CHUNK_BYTES + OVERLAP_BYTES, end - offset))
                except (OSError, ValueError, OverflowError):
                    break


def scan(pid: int, needle: str) -> tuple[dict[str, int], set[str]]:
    """How often `needle` occurs as UCS-1/ASCII, UTF-16 and UCS-4 (CPython's str storage), and every
    agent-token-shaped ASCII string seen."""
    forms = {"ascii": needle.encode(), "utf-16": needle.encode("utf-16-le"), "ucs-4": needle.encode("utf-32-le")}
    counts = dict.fromkeys(forms, 0)
    seen: set[str] = set()
    for chunk in memory_of(pid):
        for form, encoded in forms.items():
            counts[form] += chunk.count(encoded)
        seen.update(match.decode() for match in AGENT_TOKEN_PATTERN.findall(chunk))
    return counts, seen


def tokens_by_plaintext(candidates: set[str]) -> dict[str, AgentToken]:
    """Which of the strings are real agent tokens, found by their digest as the server would."""
    by_digest = {tokens.digest(candidate): candidate for candidate in candidates}
    return {by_digest[token.digest]: token for token in AgentToken.objects.filter(digest__in=by_digest)}


def report(summary: str) -> dict:
    return {"summary": summary, "state": "working", "link": ""}


def test_parent_token_given_by_file_is_nowhere_in_the_servers_memory(live_server, issued, tmp_path):
    """Least privilege, read from outside: after start-up and a tool call, no mapping of the running server
    holds the parent agent token in any of CPython's string encodings. The same scan finds the working token
    the server must hold, so it is reading the right memory."""
    token_file = tmp_path / "agent-token"
    token_file.write_text(issued.plaintext + "\n")
    env = server_env(CODER_URL=live_server.url, CODER_AGENT_TOKEN_FILE=str(token_file))

    async def scenario(session):
        sent = await session.call_tool("coder_report_task", report("Scanning"))
        counts, seen = scan(server_pid(), issued.plaintext)
        live = await in_db(lambda: {t.name for t in tokens_by_plaintext(seen).values() if t.revoked_at is None})
        return sent, counts, seen, live

    sent, counts, seen, live = run_session(env, scenario, errlog_path=tmp_path / "stderr.log")
    assert structured(sent)["reported"] is True
    assert counts == {"ascii": 0, "utf-16": 0, "ucs-4": 0}, "the parent token is in the server's memory"
    assert issued.plaintext not in seen
    assert {"coderauth-mcp", "coderauth-mcp renewal"} <= live, "control: the scan must find the live child tokens"


def test_parent_token_given_in_the_environment_stays_in_proc_environ(live_server, issued, tmp_path):
    """What docs/mcp.md says: the kernel keeps a process's initial environment readable in /proc/<pid>/environ
    for its whole life, whatever the process does; hence the recommendation of CODER_AGENT_TOKEN_FILE."""
    env = server_env(CODER_URL=live_server.url, CODER_AGENT_TOKEN=issued.plaintext)

    async def scenario(session):
        await session.call_tool("coder_get_agent", {})
        return Path(f"/proc/{server_pid()}/environ").read_bytes()

    environ = run_session(env, scenario, errlog_path=tmp_path / "stderr.log")
    assert f"CODER_AGENT_TOKEN={issued.plaintext}".encode() in environ.split(b"\0")


def test_renewal_token_stolen_from_memory_is_noticed_and_the_lineage_revoked(live_server, owner, issued, tmp_path):
    """A thief copies the renewal token out of the server's memory and rotates it to keep a fresh one. The
    server's next renewal presents its now rotated-out copy: coderauth sees two holders, revokes the whole
    lineage (the thief's successor too) and audits agent_token.reuse_detected; the server logs one line and
    every tool answers "credentials revoked"."""
    token_file = tmp_path / "agent-token"
    token_file.write_text(issued.plaintext)
    env = server_env(CODER_URL=live_server.url, CODER_AGENT_TOKEN_FILE=str(token_file))
    errlog_path = tmp_path / "stderr.log"

    def steal_and_rotate(seen: set[str]) -> tuple[str, str]:
        found = tokens_by_plaintext(seen)
        stolen = next(plain for plain, token in found.items() if token.name == "coderauth-mcp renewal")
        rotated = client_for_agent_token(stolen).post(reverse("agents:agent-token-rotate"))
        assert rotated.status_code == 201, rotated.content
        # Force the server's renewal now rather than in ten minutes: its working token is refused.
        working = next(token for token in found.values() if token.name == "coderauth-mcp" and not token.revoked_at)
        agent_token_revoke(actor=owner, token=working)
        return stolen, rotated.json()["token"]

    async def scenario(session):
        before = await session.call_tool("coder_report_task", report("Before the theft"))
        _, seen = scan(server_pid(), issued.plaintext)
        stolen, thiefs = await in_db(lambda: steal_and_rotate(seen))
        after = await session.call_tool("coder_get_agent", {})
        again = await session.call_tool("coder_report_task", report("After the theft"))
        return before, stolen, thiefs, after, again

    before, stolen, thiefs, after, again = run_session(env, scenario, errlog_path=errlog_path)
    assert structured(before)["reported"] is True
    for result in (after, again):
        assert result.isError
        assert "credentials revoked; restart the MCP server with a fresh agent token" in text_of(result)
    thiefs_token = AgentToken.objects.get(digest=tokens.digest(thiefs))
    assert thiefs_token.revoked_at is not None, "the thief's successor is revoked with the lineage"
    assert AuditEvent.objects.filter(action="agent_token.reuse_detected", agent_id=issued.token.agent_id).exists()
    assert AgentToken.objects.get(pk=issued.token.pk).revoked_at is None, "the agent's own token is left alone"
    log = errlog_path.read_text()
    assert len([line for line in log.splitlines() if "possible theft" in line]) == 1
    assert stolen not in log and thiefs not in log and issued.plaintext not in log
