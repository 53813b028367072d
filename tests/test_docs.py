"""The documentation holds: every relative link resolves, every shell block parses, and the walk-throughs run.

The walk-through blocks (the ```sh blocks between `<!-- walkthrough:start -->` and `<!-- walkthrough:end -->`)
run with bash, curl and jq against a live server, exactly as a reader pastes them: the reader's setup (BASE and
PASSWORD) comes from the test instead.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.cache import cache

from agents.models import AgentToken, Workspace
from audit.models import AuditEvent
from tests.helpers.factories import PASSWORD, AdminFactory

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
WALKTHROUGH_START = "<!-- walkthrough:start -->"
WALKTHROUGH_END = "<!-- walkthrough:end -->"
SHELL_LANGUAGES = {"sh", "bash", "shell"}

_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})\s*([\w+-]*)")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_INLINE_CODE = re.compile(r"(`+)(.+?)\1")
_MARKDOWN_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HTML_LINK = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)=\"([^\"]+)\"", re.IGNORECASE)
_HTML_ANCHOR = re.compile(r"<a\b[^>]*?\b(?:id|name)=\"([^\"]+)\"", re.IGNORECASE)
_URL_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//")
_PLACEHOLDER = re.compile(r"<[A-Za-z][A-Za-z0-9 _-]*>")


# --- Reading markdown -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CodeBlock:
    language: str
    text: str
    line: int
    in_walkthrough: bool


def _closes(line: str, fence: str) -> bool:
    """A closing fence: at least as many of the opening fence's characters, and nothing else."""
    stripped = line.strip()
    return stripped.startswith(fence[0] * len(fence)) and not stripped.strip(fence[0])


def prose_lines(text: str):
    """(line number, line) for every line outside fenced code blocks."""
    fence = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = _FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
        elif fence is not None and _closes(line, fence):
            fence = None
        elif fence is None:
            yield number, line


def code_blocks(text: str) -> list[CodeBlock]:
    blocks, fence, language, start, body, walkthrough = [], None, "", 0, [], False
    for number, line in enumerate(text.splitlines(), start=1):
        match = _FENCE.match(line)
        if fence is None:
            if match:
                fence, language, start, body = match.group(1), match.group(2).lower(), number, []
            elif line.strip() == WALKTHROUGH_START:
                walkthrough = True
            elif line.strip() == WALKTHROUGH_END:
                walkthrough = False
        elif _closes(line, fence):
            text_of_block = "\n".join(body) + "\n"
            blocks.append(CodeBlock(language=language, text=text_of_block, line=start, in_walkthrough=walkthrough))
            fence = None
        else:
            body.append(line)
    return blocks


def links_in(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every markdown link, image and HTML href/src outside code."""
    found = []
    for number, line in prose_lines(text):
        line = _INLINE_CODE.sub(lambda match: " " * len(match.group(0)), line)
        found += [(number, match.group(1)) for match in _MARKDOWN_LINK.finditer(line)]
        found += [(number, match.group(1)) for match in _HTML_LINK.finditer(line)]
    return found


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its rendered text, lower-cased, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors_of(document: Path) -> set[str]:
    text = document.read_text(encoding="utf-8")
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in prose_lines(text):
        anchors.update(_HTML_ANCHOR.findall(line))
        match = _HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        # GitHub numbers repeated headings: results, results-1, results-2...
        anchors.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def link_problem(document: Path, target: str) -> str | None:
    """Why a link in `document` is broken, or None. External URLs are not followed."""
    if _URL_SCHEME.match(target):
        return None
    path_part, _, anchor = target.partition("#")
    resolved = (document.parent / path_part).resolve() if path_part else document
    if not resolved.is_relative_to(ROOT):
        return f"{target} points outside the repository"
    if not resolved.exists():
        return f"{target}: no such file {resolved.relative_to(ROOT)}"
    if anchor:
        if resolved.suffix != ".md" or resolved.is_dir():
            return f"{target}: an anchor into a file that has no headings"
        if anchor not in anchors_of(resolved):
            return f"{target}: no heading with the anchor #{anchor} in {resolved.relative_to(ROOT)}"
    return None


def _all_links():
    for document in DOCUMENTS:
        for line, target in links_in(document.read_text(encoding="utf-8")):
            yield pytest.param(document, target, id=f"{document.relative_to(ROOT)}:{line}:{target}")


def _all_shell_blocks():
    for document in DOCUMENTS:
        for block in code_blocks(document.read_text(encoding="utf-8")):
            if block.language in SHELL_LANGUAGES:
                yield pytest.param(block, id=f"{document.relative_to(ROOT)}:{block.line}")


# --- Links ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("document", "target"), list(_all_links()))
def test_relative_link_resolves(document: Path, target: str):
    assert link_problem(document, target) is None, link_problem(document, target)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("docs/no-such-page.md", "no such file"),
        ("docs/concepts.md#no-such-heading", "no heading with the anchor #no-such-heading"),
        ("#nowhere", "no heading with the anchor #nowhere"),
        ("docs/screenshots/dashboard.png#top", "an anchor into a file that has no headings"),
        ("../outside.md", "points outside the repository"),
    ],
)
def test_the_checker_flags_broken_links(target: str, expected: str):
    assert expected in (link_problem(ROOT / "README.md", target) or "")


def test_the_checker_accepts_good_links():
    assert link_problem(ROOT / "README.md", "docs/concepts.md#tokens") is None
    assert link_problem(ROOT / "docs" / "ui.md", "screenshots/dashboard.png") is None
    assert link_problem(ROOT / "README.md", "https://example.com/anything#at-all") is None


def test_links_are_read_from_prose_only():
    text = (
        "See [a](a.md) and ![b](b.png), `[not](code.md)`.\n"
        '<img src="c.png" alt="c">\n'
        "```sh\n[also not](block.md)\n```\n"
        "[d](d.md#x)\n"
    )
    assert links_in(text) == [(1, "a.md"), (1, "b.png"), (2, "c.png"), (6, "d.md#x")]


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("Walk-through: from login to a refused SSH-key read", "walk-through-from-login-to-a-refused-ssh-key-read"),
        ("Retention: archive_audit", "retention-archive_audit"),
        ("`make run` & friends", "make-run--friends"),
        ("The agent's `TokenAuthentication`", "the-agents-tokenauthentication"),
        ("Token scopes ∩ the mode → allowed", "token-scopes--the-mode--allowed"),
        ("[Linked](other.md) heading", "linked-heading"),
    ],
)
def test_github_slug(heading: str, slug: str):
    assert github_slug(heading) == slug


def test_repeated_headings_are_numbered(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Results\n\n## Results\n\n```sh\n# Results\n```\n", encoding="utf-8")
    assert anchors_of(page) == {"results", "results-1"}


# --- Shell blocks -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("block", list(_all_shell_blocks()))
def test_shell_block_is_pasteable(block: CodeBlock):
    """Every shell example parses, and holds no `<placeholder>` that the shell would read as a redirection."""
    commands = "\n".join(line for line in block.text.splitlines() if not line.lstrip().startswith("#"))
    assert not _PLACEHOLDER.findall(commands), f"placeholders in a shell example: {_PLACEHOLDER.findall(commands)}"
    checked = subprocess.run(["bash", "-n"], input=block.text, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr


# --- The walk-throughs, run against a live server ---------------------------------------------------------------


def walkthrough_blocks(document: Path) -> list[str]:
    blocks = [
        block.text
        for block in code_blocks(document.read_text(encoding="utf-8"))
        if block.in_walkthrough and block.language in SHELL_LANGUAGES
    ]
    assert blocks, f"{document.relative_to(ROOT)} has no ```sh blocks between {WALKTHROUGH_START} and {WALKTHROUGH_END}"
    return blocks


_BLOCK_SEPARATOR = "@@next-block@@"


def run_blocks(blocks: list[str], *, live_server, home: Path) -> list[str]:
    """Run the blocks in one bash (as one pasted session) and return each block's standard output."""
    for tool in ("bash", "curl", "jq"):
        if shutil.which(tool) is None:
            pytest.fail(f"the documentation's examples need {tool}; install it")
    script = "".join(f"printf '\\n{_BLOCK_SEPARATOR}\\n'\n{block}" for block in blocks)
    environment = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "BASE": f"{live_server.url}/api/v2",
        "PASSWORD": PASSWORD,
    }
    # Every login of the suite comes from 127.0.0.1; start this session with a fresh login budget.
    cache.clear()
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    outputs = result.stdout.split(f"\n{_BLOCK_SEPARATOR}\n")[1:]
    assert len(outputs) == len(blocks), result.stdout
    return outputs


def by_step(blocks: list[str], outputs: list[str]) -> dict[int, str]:
    """Each block's output under the step number of its first line (`# 6. ...`)."""
    steps = {}
    for block, output in zip(blocks, outputs, strict=True):
        match = re.match(r"# (\d+)\. ", block)
        assert match, f"a walk-through block must start with '# N. what it does':\n{block}"
        steps[int(match.group(1))] = output
    return steps


def json_lines(output: str) -> list:
    return [json.loads(line) for line in output.splitlines() if line.startswith(("{", "["))]


def http_response(output: str) -> tuple[int, dict[str, str], dict]:
    """Status, headers and JSON body of `curl -i` output (read as text, so CRLF is already plain newlines)."""
    head, _, body = output.replace("\r\n", "\n").partition("\n\n")
    status_line, *header_lines = head.strip().splitlines()
    headers = {name.lower(): value for name, _, value in (line.partition(": ") for line in header_lines)}
    return int(status_line.split()[1]), headers, json.loads(body)


MODE_REFUSAL = {
    "detail": "The agent's permission mode 'no-user-data' does not allow 'agent:gitsshkey'.",
    "required_scope": "agent:gitsshkey",
    "permission_mode": "no-user-data",
    "denied_by": "permission_mode",
}
ALL_SCOPES = ["agent:connect", "agent:report", "agent:gitsshkey", "agent:external-auth"]


def test_readme_tour_runs(live_server, tmp_path):
    AdminFactory(username="admin")
    (output,) = run_blocks(walkthrough_blocks(ROOT / "README.md"), live_server=live_server, home=tmp_path)

    mode, refusal = output.strip().splitlines()
    assert mode == "no-user-data"
    assert json.loads(refusal) == MODE_REFUSAL
    assert AuditEvent.objects.filter(action="agent.access_denied", details__denied_by="permission_mode").count() == 1


def test_concepts_walkthrough_runs(live_server, tmp_path):
    """docs/concepts.md's walk-through, pasted into bash against a live server, says and does what it shows."""
    admin = AdminFactory(username="admin")
    blocks = walkthrough_blocks(ROOT / "docs" / "concepts.md")
    steps = by_step(blocks, run_blocks(blocks, live_server=live_server, home=tmp_path))
    assert sorted(steps) == list(range(1, 11))

    assert json_lines(steps[1]) == [{"id": admin.pk, "username": "admin", "roles": ["admin"]}]

    workspace = Workspace.objects.get(name="payments", owner=admin)
    agent = workspace.agents.get(name="main")
    assert steps[2].strip() == f"workspace {workspace.id}, agent {agent.id}"

    (issued,) = json_lines(steps[3])
    assert issued["scopes"] == ALL_SCOPES and issued["parent_id"] is None and issued["agent_id"] == str(agent.id)

    manifest, app_status = json_lines(steps[4])
    assert (manifest["agent_name"], manifest["workspace_name"], manifest["permission_mode"]) == (
        "main",
        "payments",
        "default",
    )
    assert app_status["message"] == "Running the test suite"
    assert steps[4].splitlines()[-1] == "-----BEGIN OPENSSH PRIVATE KEY-----"

    assert steps[5].strip() == "no-user-data"

    status, _, body = http_response(steps[6])
    assert (status, body) == (403, MODE_REFUSAL)

    status, headers, body = http_response(steps[7])
    assert status == 401
    assert headers["www-authenticate"] == 'Bearer realm="user"'
    assert body == {"detail": "This route requires a user session or user token; agent tokens are not accepted here."}

    assert json_lines(steps[8]) == [{"scopes": ["agent:report"], "parent_id": issued["id"]}]

    *listed, refused = json_lines(steps[9])
    assert [token["scopes"] for token in listed] == [["agent:report"], ALL_SCOPES]
    assert "204" in steps[9].splitlines()
    assert refused == {"detail": "Invalid, expired or revoked token."}
    assert not AgentToken.objects.filter(agent=agent, revoked_at__isnull=True).exists()

    assert [line.split() for line in steps[10].strip().splitlines()] == [
        ["agent_token.rejected", "agent"],
        ["agent_token.revoked", "user"],
        ["agent_token.issued", "agent"],
        ["agent.access_denied", "agent"],
        ["workspace.mode_changed", "user"],
        ["agent.user_data_accessed", "agent"],
        ["user.gitsshkey_created", "agent"],
        ["agent_token.issued", "user"],
        ["agent.created", "user"],
        ["workspace.created", "user"],
    ]
    assert AuditEvent.objects.filter(action="user.login", actor="admin").exists()


def test_mcp_example_runs_after_the_walkthrough(live_server, tmp_path):
    """docs/mcp.md's example mints its own agent token (the walk-through revoked its own) and reports a task."""
    admin = AdminFactory(username="admin")
    walkthrough = walkthrough_blocks(ROOT / "docs" / "concepts.md")
    example = walkthrough_blocks(ROOT / "docs" / "mcp.md")
    outputs = run_blocks(walkthrough + example, live_server=live_server, home=tmp_path)[len(walkthrough) :]

    tools_line, _, tool_result = outputs[1].partition("\n")
    assert tools_line == "['coder_report_task', 'coder_get_agent', 'coder_request_access', 'coder_get_access_request']"
    report = json.loads(tool_result)
    assert report["reported"] is True and report["app_status"]["message"] == "Refactoring the login form"
    status, children = outputs[2].strip().splitlines()[0], outputs[2].strip().splitlines()[1:]
    assert json.loads(status) == {
        "app_slug": "coder",
        "state": "working",
        "message": "Refactoring the login form",
        "uri": "https://example.com/pr/1",
    }
    assert [json.loads(line) for line in children] == [
        {"name": "coderauth-mcp", "scopes": ["agent:connect", "agent:report"], "revoked": True},
        {"name": "coderauth-mcp renewal", "scopes": ["agent:connect", "agent:report"], "revoked": True},
    ]
    mcp_token = AgentToken.objects.get(agent__workspace__owner=admin, name="mcp")
    assert mcp_token.scopes == ["agent:connect", "agent:report"] and mcp_token.revoked_at is None
