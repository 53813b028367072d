"""Mutation testing of the guarantees: break each guard on purpose and check that the suite notices.

Each mutant replaces one exact snippet of a module that holds a guarantee (token format and digest, both
authentication flows, the scope check, the mode-change rules, the token services, the audit chain, the MCP
server's tool gating). For each mutant the script copies the tree, applies the change, runs the suite with
-x and records whether some test failed (killed) or everything passed (survived). The real tree is never
touched. Run it with `make check-mutants`; docs/security.md records the kill rate and the equivalent mutants.

    python scripts/mutants.py                 # every mutant
    python scripts/mutants.py --only rules-   # the mutants whose id starts with "rules-"
    python scripts/mutants.py --check         # does every mutant still apply to the code?
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", ".pgdata*", "__pycache__", "*.pyc", "staticfiles", ".ruff_cache")
PYTEST_ARGS = ["-x", "-q", "-p", "no:cacheprovider", "-m", "not browser and not reliability"]
TIMEOUT_SECONDS = 900


@dataclass(frozen=True)
class Mutant:
    id: str
    path: str
    original: str
    mutated: str
    why: str


MUTANTS: tuple[Mutant, ...] = (
    # core/tokens.py: the format and the keyed digest.
    Mutant(
        "tokens-checksum-ignored",
        "core/tokens.py",
        "return hmac.compare_digest(checksum(random_part), given)",
        "return True",
        "a typo or forged string would reach the database",
    ),
    Mutant(
        "tokens-alphabet-ignored",
        "core/tokens.py",
        "    if not _ALPHABET_SET.issuperset(body):\n        return False\n",
        "",
        "characters outside base62 accepted",
    ),
    Mutant(
        "tokens-length-ignored",
        "core/tokens.py",
        "if len(token) != TOKEN_LENGTH or not token.startswith(prefix):",
        "if not token.startswith(prefix):",
        "tokens of any length accepted",
    ),
    Mutant(
        "tokens-digest-unkeyed",
        "core/tokens.py",
        'return hmac.new(key, token.encode("ascii", "replace"), hashlib.sha256).hexdigest()',
        'return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()',
        "a leaked table would be enough to check guesses",
    ),
    Mutant(
        "tokens-hint-leaks",
        "core/tokens.py",
        'return f"{prefix}…{token[-4:]}"',
        'return f"{prefix}…{token[-12:]}"',
        "the display hint shows more of the secret",
    ),
    # agents/authentication.py: the two flows.
    Mutant(
        "auth-wrong-kind-not-named",
        "agents/authentication.py",
        "    if claimed is not None and claimed != kind:\n"
        "        raise exceptions.AuthenticationFailed(wrong_kind_message)\n",
        "",
        "a token of the other flow is answered as merely malformed",
    ),
    Mutant(
        "auth-agent-realm",
        "agents/authentication.py",
        "return 'Bearer realm=\"agent\"'",
        "return 'Bearer'",
        "the agent routes' challenge loses its realm",
    ),
    Mutant(
        "auth-user-flow-accepts-agent-tokens",
        "agents/authentication.py",
        'raw = _well_formed_token(request, kind="user", wrong_kind_message=USER_TOKEN_REQUIRED)',
        "raw = token_from_headers(request)\n"
        '        if raw is not None and raw.startswith("cda_"):\n'
        "            return None",
        "an agent token on a user route falls through to the next authenticator",
    ),
    Mutant(
        "auth-query-string-token",
        "agents/authentication.py",
        'coder_header = request.headers.get("Coder-Session-Token", "").strip()',
        'coder_header = (request.headers.get("Coder-Session-Token", "") or request.GET.get("token", "")).strip()',
        "a token in the query string (and so in proxy logs) authenticates",
    ),
    # agents/services/principals.py: the lookup's refusals.
    Mutant(
        "principal-revoked-accepted",
        "agents/services/principals.py",
        "if revoked_at is not None or expires_at <= now or not owner_active:",
        "if expires_at <= now or not owner_active:",
        "a revoked agent token authenticates",
    ),
    Mutant(
        "principal-expired-accepted",
        "agents/services/principals.py",
        "if revoked_at is not None or expires_at <= now or not owner_active:",
        "if revoked_at is not None or not owner_active:",
        "an expired agent token authenticates",
    ),
    Mutant(
        "principal-inactive-owner-accepted",
        "agents/services/principals.py",
        "if revoked_at is not None or expires_at <= now or not owner_active:",
        "if revoked_at is not None or expires_at <= now:",
        "a deactivated owner's agents keep working",
    ),
    Mutant(
        "principal-agent-override-ignored",
        "agents/services/principals.py",
        "COALESCE(agent_mode.scopes, workspace_mode.scopes)",
        "workspace_mode.scopes",
        "an agent's tighter override is ignored",
    ),
    Mutant(
        "user-token-inactive-accepted",
        "agents/services/principals.py",
        "if token is None or not token.is_live(now) or not token.user.is_active:",
        "if token is None or not token.is_live(now):",
        "a deactivated user's tokens keep working",
    ),
    Mutant(
        "user-token-revoked-accepted",
        "agents/services/principals.py",
        "if token is None or not token.is_live(now) or not token.user.is_active:",
        "if token is None or not token.user.is_active:",
        "a revoked or expired user token authenticates",
    ),
    # policies: the scope check.
    Mutant(
        "principal-union-not-intersection",
        "policies/principals.py",
        "return self.token_scopes & (self.mode_scopes | self.granted_scopes)",
        "return self.token_scopes | (self.mode_scopes | self.granted_scopes)",
        "the mode stops limiting the token",
    ),
    Mutant(
        "principal-mode-only",
        "policies/principals.py",
        "return self.token_scopes & (self.mode_scopes | self.granted_scopes)",
        "return self.mode_scopes | self.granted_scopes",
        "a narrow token gets everything its mode allows",
    ),
    # The just-in-time grant: it never widens a token, and it lapses by time and revocation alone.
    Mutant(
        "principal-grant-widens-token",
        "policies/principals.py",
        "return self.token_scopes & (self.mode_scopes | self.granted_scopes)",
        "return (self.token_scopes & self.mode_scopes) | self.granted_scopes",
        "a grant gives a token a scope it never carried",
    ),
    Mutant(
        "principal-grant-never-lapses",
        "agents/services/principals.py",
        "WHERE r.agent_id = a.id AND r.state = 'approved' AND r.expires_at > %(now)s",
        "WHERE r.agent_id = a.id AND r.state = 'approved'",
        "a grant keeps working after its expiry",
    ),
    Mutant(
        "principal-grant-revocation-ignored",
        "agents/services/principals.py",
        "WHERE r.agent_id = a.id AND r.state = 'approved' AND r.expires_at > %(now)s",
        "WHERE r.agent_id = a.id AND r.state IN ('approved', 'revoked') AND r.expires_at > %(now)s",
        "a revoked grant keeps working until its expiry",
    ),
    Mutant(
        "permission-any-principal",
        "policies/permissions.py",
        "if not isinstance(principal, AgentPrincipal):",
        "if principal is None:",
        "anything authenticated passes the agent scope check",
    ),
    Mutant(
        "permission-scope-ignored",
        "policies/permissions.py",
        "if scope == ANY_VALID_AGENT_TOKEN or scope in principal.allowed_scopes:",
        "if True:",
        "the scope check allows every route",
    ),
    Mutant(
        "permission-undeclared-allowed",
        "policies/permissions.py",
        "if scope not in (*ALL_SCOPES, ANY_VALID_AGENT_TOKEN):",
        "if False:",
        "a view that forgets its scope is not stopped",
    ),
    Mutant(
        "permission-denial-unaudited",
        "policies/permissions.py",
        "        agent_access_denied_record(\n",
        "        (lambda **kwargs: None)(\n",
        "a refused agent request leaves no audit row",
    ),
    # policies/rules.py: who may change what.
    Mutant(
        "rules-auditor-writes-own",
        "policies/rules.py",
        "return not is_auditor(actor) and (is_admin(actor) or owner_id == actor.pk)",
        "return is_admin(actor) or owner_id == actor.pk",
        "an auditor may write to a workspace they own",
    ),
    Mutant(
        "rules-anyone-writes",
        "policies/rules.py",
        "return not is_auditor(actor) and (is_admin(actor) or owner_id == actor.pk)",
        "return not is_auditor(actor)",
        "any member may write to any workspace",
    ),
    Mutant(
        "rules-auditor-creates",
        "policies/rules.py",
        '    """Anyone but an auditor may create what they will own."""\n'
        "    if is_auditor(actor):\n        raise NotPermitted(AUDITORS_READ_ONLY)\n",
        '    """Anyone but an auditor may create what they will own."""\n',
        "an auditor may create workspaces",
    ),
    Mutant(
        "rules-owner-loosens",
        "policies/rules.py",
        "return is_admin(actor) or new.scope_set() <= current.scope_set()",
        "return True",
        "an owner may loosen a mode",
    ),
    Mutant(
        "rules-admin-only-open",
        "policies/rules.py",
        "    if not is_admin(actor):\n        raise NotPermitted(message)\n",
        "    return None\n",
        "admin-only changes (custom modes, providers) open to everyone",
    ),
    # agents/services/tokens.py: issue, mint, revoke.
    Mutant(
        "tokens-issue-outside-mode",
        "agents/services/tokens.py",
        "        outside = requested - allowed\n        if outside:\n            raise InvalidInput(\n"
        '                f"Scopes outside',
        "        outside = set()\n        if outside:\n            raise InvalidInput(\n"
        '                f"Scopes outside',
        "a root token may carry scopes its mode does not allow",
    ),
    Mutant(
        "tokens-child-wider",
        "agents/services/tokens.py",
        "allowed = principal.token_scopes & agent.effective_permission_mode.scope_set()",
        "allowed = principal.token_scopes | agent.effective_permission_mode.scope_set()",
        "a child may hold scopes its parent is not allowed",
    ),
    Mutant(
        "tokens-child-outlives-parent",
        "agents/services/tokens.py",
        "expires_at = min(timezone.now() + lifetime, principal.token_expires_at)",
        "expires_at = timezone.now() + lifetime",
        "a child outlives its parent",
    ),
    Mutant(
        "tokens-mint-after-revoke",
        "agents/services/tokens.py",
        "        if row is None or row[0] is not None:\n",
        "        if row is None:\n",
        "a revoked parent still mints children",
    ),
    Mutant(
        "tokens-revoke-not-subtree",
        "agents/services/tokens.py",
        "    SELECT child.id FROM agents_agenttoken child JOIN subtree ON child.parent_id = subtree.id\n",
        "    SELECT child.id FROM agents_agenttoken child JOIN subtree ON child.parent_id = subtree.id WHERE false\n",
        "revoking a parent leaves its children alive",
    ),
    Mutant(
        "tokens-agent-revokes-sibling",
        "agents/services/tokens.py",
        "SELECT 1 FROM ancestors WHERE id = %s",
        "SELECT 1 WHERE %s IS NOT NULL",
        "an agent may revoke a sibling's token",
    ),
    # audit: the chain and its writer.
    Mutant(
        "chain-hash-unchecked",
        "audit/chain.py",
        '        if row_hash(row) != row["hash"]:\n',
        "        if False:\n",
        "an altered row verifies",
    ),
    Mutant(
        "chain-link-unchecked",
        "audit/chain.py",
        '        if row["prev_hash"] != self.head:\n',
        "        if False:\n",
        "a removed or reordered row verifies",
    ),
    Mutant(
        "chain-field-unhashed",
        "audit/chain.py",
        "HASHED_FIELDS = FIELDS[:-1]",
        'HASHED_FIELDS = tuple(name for name in FIELDS[:-1] if name != "details")',
        "details could be rewritten without breaking the chain",
    ),
    Mutant(
        "audit-outside-transaction",
        "audit/services.py",
        "    if not transaction.get_connection().in_atomic_block:\n"
        '        raise RuntimeError("audit_record must run inside the transaction of the change it records.")\n',
        "",
        "an audit row could commit apart from its change",
    ),
    Mutant(
        "audit-unknown-action",
        "audit/services.py",
        "    if action not in actions.ALL:\n",
        "    if False:\n",
        "an action name outside the catalogue is recorded",
    ),
    Mutant(
        "writer-stamps-before-its-lock",
        "audit/services.py",
        '" VALUES (clock_timestamp(), %s,',
        '" VALUES (now(), %s,',
        "a row is stamped with its transaction's start, before its INSERT holds the table lock, so an export "
        "pinned meanwhile can miss it",
    ),
    Mutant(
        "sealer-ignores-writers-in-flight",
        "audit/sealing.py",
        "    running = inflight_writers_wait(writers, timeout=wait_seconds)\n",
        "    running = 0\n",
        "a row committed late, below the sealed head, is passed over by the chain",
    ),
    Mutant(
        "seal-trigger-lets-content-change",
        "audit/migrations/0003_sealed_chain.py",
        "    IF OLD.hash = '' AND OLD.prev_hash = '' AND NEW.hash <> '' AND NEW.prev_hash <> ''\n",
        "    IF TRUE\n",
        "an unsealed or sealed row could be rewritten in place",
    ),
    # Key rotation: tokens under a previous digest key.
    Mutant(
        "principal-previous-key-ignored",
        "agents/services/principals.py",
        "    if row is None and _token_rekey(AgentToken, raw_token):\n",
        "    if False:\n",
        "an agent token issued before a key rotation stops working",
    ),
    Mutant(
        "principal-rekey-race",
        "agents/services/principals.py",
        '"Token %s moved from a previous digest key to the current one", tokens.display_hint(raw_token))\n'
        "    return True\n",
        '"Token %s moved from a previous digest key to the current one", tokens.display_hint(raw_token))\n'
        "    return bool(moved)\n",
        "concurrent first uses after a key switch get 401s",
    ),
    # audit/checkpoints.py: the signed anchors.
    Mutant(
        "anchor-signature-unchecked",
        "audit/checkpoints.py",
        "        public_key.verify(base64.b64decode(signature, validate=True), signed_bytes(statement))\n",
        "        base64.b64decode(signature, validate=True)\n",
        "a forged signature re-anchors the audit chain",
    ),
    Mutant(
        "anchor-place-unbound",
        "audit/checkpoints.py",
        'if statement["head"]["hash"] != row["prev_hash"] or statement["head"]["id"] >= int(row["id"]):',
        "if False:",
        "a genuine signature copied to another row re-anchors the chain",
    ),
    # core/crypto.py: encryption bound to the row.
    Mutant(
        "crypto-context-ignored",
        "core/crypto.py",
        "return header + nonce + _cipher(secret).encrypt(nonce, plaintext.encode(), header + context.encode())",
        "return header + nonce + _cipher(secret).encrypt(nonce, plaintext.encode(), header)",
        "a ciphertext copied into another user's row would decrypt",
    ),
    # coderauth/mcp/server.py: tool gating.
    Mutant(
        "mcp-user-tool-without-user-token",
        "coderauth/mcp/server.py",
        "        if not self.config.session_token:\n            raise ToolError(",
        "        if False:\n            raise ToolError(",
        "a user tool runs without a user token",
    ),
    Mutant(
        "mcp-allow-list-ignored",
        "coderauth/mcp/server.py",
        "        if not self.config.tool_allowed(tool):\n",
        "        if False:\n",
        "a user tool outside CODER_MCP_ALLOWED_TOOLS runs",
    ),
)

# The tests closest to each module run first: most mutants die there within seconds. A mutant they miss is only
# counted as surviving once the whole suite has passed with it.
FIRST_TESTS: dict[str, tuple[str, ...]] = {
    "core/tokens.py": ("core/tests", "tests/test_guards.py", "agents/tests/apis/test_authentication.py"),
    "core/crypto.py": ("tests/test_secrets_at_rest.py", "core/tests/test_key_rotation.py"),
    "agents/authentication.py": ("tests/test_guards.py", "agents/tests/apis", "tests/test_route_matrix.py"),
    "agents/services/principals.py": (
        "agents/tests/apis/test_authentication.py",
        "agents/tests/apis/test_elevated_use.py",
        "tests/test_guards.py",
        "tests/test_mode_changes.py",
        "core/tests/test_key_rotation.py",
        "agents/tests/commands/test_rotate_keys.py",
    ),
    "agents/services/tokens.py": ("agents/tests/apis/test_agent_tokens.py", "tests/test_guards.py", "agents/tests"),
    "policies/": ("tests/test_route_matrix.py", "tests/test_mode_changes.py", "tests/test_guards.py", "policies/tests"),
    "audit/": ("audit/tests",),
    "coderauth/mcp/": ("tests/mcp_server",),
}

# Mutants that change no behaviour a user can observe, with the reason (docs/security.md repeats them).
EQUIVALENT: dict[str, str] = {
    "tokens-length-ignored": (
        "the length check is an early exit: the checksum is read from fixed offsets, so a token of any other "
        "length already fails the checksum comparison (its last part is not exactly six characters)"
    ),
}


def _copy(tree: Path) -> Path:
    """The checkout without git, caches or databases; the virtualenv is linked (the docs' examples run it)."""
    shutil.copytree(REPO, tree, ignore=COPY_IGNORE)
    (tree / ".venv").symlink_to(REPO / ".venv")
    return tree


def _apply(tree: Path, mutant: Mutant) -> None:
    path = tree / mutant.path
    text = path.read_text()
    count = text.count(mutant.original)
    if count != 1:
        raise LookupError(f"{mutant.id}: the snippet occurs {count} times in {mutant.path}")
    path.write_text(text.replace(mutant.original, mutant.mutated))


def _first_failure(output: str) -> str:
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split(" - ")[0]
    return output.strip().splitlines()[-1] if output.strip() else ""


def _first_tests(path: str) -> tuple[str, ...]:
    return next((tests for prefix, tests in FIRST_TESTS.items() if path.startswith(prefix)), ())


def _verdict(tree: Path, env: dict[str, str], mutant: Mutant) -> tuple[str, float]:
    """Killed by the closest tests, else by the whole suite, else survived."""
    first = _first_tests(mutant.path)
    if first:
        outcome, seconds = _run(tree, env, first)
        if outcome != "survived":
            return outcome, seconds
        outcome, more = _run(tree, env)
        return outcome, seconds + more
    return _run(tree, env)


def _run(tree: Path, env: dict[str, str], paths: tuple[str, ...] = ()) -> tuple[str, float]:
    started = time.monotonic()
    try:
        result = subprocess.run(  # noqa: S603 - fixed argv
            [sys.executable, "-m", "pytest", *PYTEST_ARGS, *paths],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        return "killed (timeout)", time.monotonic() - started
    if result.returncode == 0:
        return "survived", time.monotonic() - started
    if result.returncode != 1:  # 2-5: interrupted, internal error, usage, nothing collected: not a test verdict
        raise RuntimeError(f"pytest exited {result.returncode}: {_first_failure(result.stdout + result.stderr)}")
    return f"killed by {_first_failure(result.stdout)}", time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run only the mutants whose id starts with this")
    parser.add_argument("--check", action="store_true", help="only check that every mutant still applies")
    args = parser.parse_args(argv)
    if args.check:
        stale = [mutant.id for mutant in MUTANTS if (REPO / mutant.path).read_text().count(mutant.original) != 1]
        print(f"{len(MUTANTS) - len(stale)} of {len(MUTANTS)} mutants apply" + (f"; stale: {stale}" if stale else ""))
        return 1 if stale else 0
    if not os.environ.get("DATABASE_URL"):
        print("error: set DATABASE_URL (make check-mutants does)", file=sys.stderr)
        return 2
    chosen = [mutant for mutant in MUTANTS if mutant.id.startswith(args.only)]
    env = {**os.environ, "TEST_DATABASE_NAME": "test_coderauth_mutants"}
    results: list[tuple[Mutant, str, float]] = []
    with tempfile.TemporaryDirectory(prefix="coderauth-mutants-") as scratch:
        baseline = _copy(Path(scratch) / "baseline")
        outcome, seconds = _run(baseline, env)
        if outcome != "survived":
            print(f"error: the unmutated suite fails ({outcome}); fix that first", file=sys.stderr)
            return 2
        print(f"baseline: the unmutated suite passes in {seconds:.0f} s", file=sys.stderr, flush=True)
        shutil.rmtree(baseline, ignore_errors=True)
        for number, mutant in enumerate(chosen, start=1):
            tree = _copy(Path(scratch) / mutant.id)
            try:
                _apply(tree, mutant)
            except LookupError as error:
                results.append((mutant, "stale", 0.0))
                print(f"[{number}/{len(chosen)}] {mutant.id}: STALE ({error})", file=sys.stderr, flush=True)
                continue
            outcome, seconds = _verdict(tree, env, mutant)
            results.append((mutant, outcome, seconds))
            print(f"[{number}/{len(chosen)}] {mutant.id}: {outcome} in {seconds:.0f} s", file=sys.stderr, flush=True)
            shutil.rmtree(tree, ignore_errors=True)
    killed = sum(1 for _, outcome, _ in results if outcome.startswith("killed"))
    survivors = [mutant for mutant, outcome, _ in results if outcome == "survived" and mutant.id not in EQUIVALENT]
    stale = [mutant for mutant, outcome, _ in results if outcome == "stale"]
    print(f"\n{killed} of {len(results)} mutants killed ({100 * killed / max(len(results), 1):.0f} %)")
    for mutant in survivors:
        print(f"SURVIVED {mutant.id} ({mutant.path}): {mutant.why}")
    for mutant in stale:
        print(f"STALE {mutant.id} ({mutant.path}): the snippet no longer matches; update the mutant")
    return 1 if survivors or stale else 0


if __name__ == "__main__":
    sys.exit(main())
