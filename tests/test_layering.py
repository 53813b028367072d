"""The layering contracts in pyproject.toml hold, and they catch an upward import, even one inside a function."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent
PACKAGES = ("coderauth", "ui", "agents", "policies", "audit", "core")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - fixed argv
        [str(LINT_IMPORTS), "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def tree(tmp_path) -> Path:
    """A copy of the product's packages and contracts, to break on purpose."""
    for package in PACKAGES:
        shutil.copytree(BASE_DIR / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(BASE_DIR / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_contracts_hold(tree):
    result = _lint_imports(tree)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_layers_contract(tree):
    """core is the bottom layer: importing an app from it is refused."""
    tokens = tree / "core" / "tokens.py"
    tokens.write_text(tokens.read_text() + "\nfrom agents.models import AgentToken  # noqa: E402,F401\n")
    result = _lint_imports(tree)
    assert result.returncode != 0
    assert "core is not allowed to import agents" in result.stdout


def test_a_function_level_import_counts_too(tree):
    """Importing inside a function to dodge a cycle is still an upward import."""
    selectors = tree / "audit" / "selectors.py"
    selectors.write_text(
        selectors.read_text()
        + "\n\ndef _report():\n    from agents.models import WorkspaceAgent\n\n    return WorkspaceAgent\n"
    )
    result = _lint_imports(tree)
    assert result.returncode != 0
    assert "audit is not allowed to import agents" in result.stdout


def test_the_mcp_server_may_not_import_django(tree):
    server = tree / "coderauth" / "mcp" / "server.py"
    server.write_text(server.read_text() + "\nimport django  # noqa: E402,F401\n")
    result = _lint_imports(tree)
    assert result.returncode != 0
    assert "coderauth.mcp" in result.stdout and "django" in result.stdout
