"""Packaging: `pip install` of the project gives a working `coderauth-mcp` without Django.

The MCP server runs inside a workspace where only `pip install` of the project is available, so the
base dependencies in pyproject.toml must be exactly what coderauth/mcp imports, pinned as in
requirements.txt (which `make install` uses), and the server's runtime stays behind the `server` extra.
Nothing is pip-installed here: the checks read pyproject.toml, requirements.txt and the source.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[2]
MCP_DIR = REPO_ROOT / "coderauth" / "mcp"


def _pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _requirements(section: str = "all") -> dict[str, Requirement]:
    """requirements.txt by canonical name; section "runtime" stops at the "# Tests and tooling" heading."""
    found = {}
    for line in (REPO_ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if section == "runtime" and line.lower().startswith("# tests"):
            break
        if line and not line.startswith("#"):
            requirement = Requirement(line)
            found[canonicalize_name(requirement.name)] = requirement
    return found


def _by_name(lines: list[str]) -> dict[str, Requirement]:
    requirements = [Requirement(line) for line in lines]
    return {canonicalize_name(requirement.name): requirement for requirement in requirements}


def _third_party_modules(source: Path) -> set[str]:
    """Top-level names imported by the .py files in `source`, minus the standard library and coderauth."""
    modules = set()
    for path in sorted(source.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return {name for name in modules if name not in sys.stdlib_module_names and name not in {"__future__", "coderauth"}}


def _distribution_of(module: str) -> str:
    distributions = importlib.metadata.packages_distributions().get(module)
    assert distributions, f"coderauth/mcp imports {module!r}, which no installed distribution provides"
    assert len(distributions) == 1, f"{module!r} is provided by several distributions: {distributions}"
    return canonicalize_name(distributions[0])


def test_mcp_scan_sees_the_sdk_and_httpx():
    """Guard for the scan itself: if it found nothing, the equality test below would prove nothing."""
    assert {"mcp", "httpx"} <= _third_party_modules(MCP_DIR)


def test_base_dependencies_are_exactly_what_the_mcp_server_imports():
    """`pip install coderauth` pulls the MCP server's imports and nothing else: no Django, no server stack."""
    imported = {_distribution_of(module) for module in _third_party_modules(MCP_DIR)}
    declared = set(_by_name(_pyproject()["project"]["dependencies"]))
    assert declared == imported, f"declared {sorted(declared)}, coderauth/mcp imports {sorted(imported)}"
    assert "django" not in declared


def test_base_dependency_pins_match_requirements_txt():
    """A dependency that requirements.txt pins has the same pin; the rest come with a pinned one and fit it."""
    requirements = _requirements()
    declared = _by_name(_pyproject()["project"]["dependencies"])
    pinned = {name: requirement for name, requirement in declared.items() if name in requirements}
    assert {"mcp", "httpx"} <= set(pinned)
    for name, requirement in pinned.items():
        assert str(requirement.specifier) == str(requirements[name].specifier), name
        assert str(requirement.specifier).startswith("=="), f"{name} must be pinned exactly, as in requirements.txt"
    brought_in = {
        canonicalize_name(Requirement(line).name)
        for name in pinned
        for line in importlib.metadata.requires(name) or []
        if "extra ==" not in line
    }
    for name, requirement in declared.items():
        if name in pinned:
            continue
        assert name in brought_in, f"{name} is neither pinned in requirements.txt nor required by {sorted(pinned)}"
        installed = importlib.metadata.version(name)
        assert requirement.specifier.contains(installed), f"{name} {installed} (from make install) misses {requirement}"


def test_server_extra_mirrors_the_runtime_pins_of_requirements_txt():
    """`pip install coderauth[server]` gets the same runtime as `make install`, without the test tools."""
    runtime = _requirements("runtime")
    base = _by_name(_pyproject()["project"]["dependencies"])
    server = _by_name(_pyproject()["project"]["optional-dependencies"]["server"])
    assert "django" in server
    for name, requirement in server.items():
        assert name in runtime, f"server extra lists {name}, which is not a runtime line of requirements.txt"
        assert str(requirement) == str(runtime[name]), f"{requirement} differs from requirements.txt {runtime[name]}"
    missing = set(runtime) - set(server) - set(base)
    assert not missing, f"runtime requirements missing from the package: {sorted(missing)}"
    assert not {"pytest", "pytest-django", "factory-boy", "ruff"} & set(server)


def test_console_script_resolves_to_a_callable_without_starting_the_server():
    """`coderauth-mcp` names a callable; importing its module must not run the server (that is the script's job)."""
    target = _pyproject()["project"]["scripts"]["coderauth-mcp"]
    module_name, _, attribute = target.partition(":")
    code = (
        f"import importlib, sys; entry = getattr(importlib.import_module({module_name!r}), {attribute!r}); "
        "assert callable(entry), 'not callable'; "
        "assert not any(m == 'django' or m.startswith('django.') for m in sys.modules), 'django'; "
        "print('ok')"
    )
    command = [sys.executable, "-c", code]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    entry = getattr(importlib.import_module(module_name), attribute)
    with pytest.raises(SystemExit) as exit_info:
        entry(["--help"])
    assert exit_info.value.code == 0


def test_package_discovery_ships_the_apps_and_not_the_tests():
    """The wheel holds coderauth (with coderauth.mcp) and the apps; no test package is installed."""
    setuptools = pytest.importorskip("setuptools")
    options = _pyproject()["tool"]["setuptools"]["packages"]["find"]
    packages = set(setuptools.find_packages(str(REPO_ROOT), include=options["include"], exclude=options["exclude"]))
    assert {"coderauth", "coderauth.mcp", "agents", "policies", "audit", "ui"} <= packages
    assert not [name for name in packages if name == "tests" or ".tests" in name or name.startswith("tests.")]
