"""manage.py reports a settings mistake as one line naming the variable, not as a Django traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]


def _manage(*args: str, **overrides: str) -> subprocess.CompletedProcess:
    """manage.py in a fresh interpreter with the production settings module (not under pytest)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CODERAUTH_")}
    env.update(DJANGO_SETTINGS_MODULE="coderauth.settings", **overrides)
    return subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )


def test_missing_secret_key_outside_debug_is_one_error_line():
    # An empty SECRET_KEY counts as unset, and a developer's .env cannot fill it back in.
    result = _manage("check", DEBUG="false", SECRET_KEY="", DATABASE_URL="postgres://nobody@127.0.0.1:1/none")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "SECRET_KEY" in lines[0]
    assert "Traceback" not in result.stderr


def test_commands_still_run_when_the_settings_load():
    result = _manage("check", DEBUG="true", SECRET_KEY="", DATABASE_URL="postgres://nobody@127.0.0.1:1/none")
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
