"""Settings from the environment: production refuses to start without SECRET_KEY."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]
PRINT_KEYS = (
    "import django; django.setup(); from django.conf import settings as s; "
    "print(s.DEBUG, s.CODERAUTH_TOKEN_DIGEST_KEY, s.CODERAUTH_ENCRYPTION_KEY, s.CODERAUTH_DEFAULT_PERMISSION_MODE)"
)


def _start(code: str, **overrides: str | None) -> subprocess.CompletedProcess:
    """Start Django in a fresh interpreter (not under pytest, so not in test mode) with a given environment."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CODERAUTH_", "SECRET_KEY"))}
    env.update({"DJANGO_SETTINGS_MODULE": "coderauth.settings", "DEBUG": "false", "ALLOWED_HOSTS": "example.com"})
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )


def test_missing_secret_key_outside_debug_stops_start_up_naming_the_variable():
    if (BASE_DIR / ".env").exists() and "SECRET_KEY=" in (BASE_DIR / ".env").read_text():
        result = _start("import django; django.setup()", SECRET_KEY="")
    else:
        result = _start("import django; django.setup()", SECRET_KEY=None)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY" in result.stderr.strip().splitlines()[-1]


def test_empty_secret_key_outside_debug_also_stops_start_up():
    result = _start("import django; django.setup()", SECRET_KEY="")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr.strip().splitlines()[-1]


def test_debug_runs_without_secret_key():
    result = _start(PRINT_KEYS, SECRET_KEY="", DEBUG="true")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("True ")


def test_production_needs_only_the_four_variables_and_derives_the_keys_from_secret_key():
    first = _start(PRINT_KEYS, SECRET_KEY="first-secret-key-" + "x" * 40)
    second = _start(PRINT_KEYS, SECRET_KEY="second-secret-key-" + "x" * 40)
    assert first.returncode == 0, first.stderr
    debug, digest_key, encryption_key, default_mode = first.stdout.split()
    assert debug == "False"
    assert default_mode == "default"
    assert digest_key != encryption_key, "one key per purpose"
    assert "first-secret-key" not in digest_key + encryption_key
    assert second.stdout.split()[1:3] != [digest_key, encryption_key]


def test_explicit_keys_override_the_derived_ones():
    result = _start(
        PRINT_KEYS,
        SECRET_KEY="s" * 50,
        CODERAUTH_TOKEN_DIGEST_KEY="digest-key",
        CODERAUTH_ENCRYPTION_KEY="encryption-key",
        CODERAUTH_DEFAULT_PERMISSION_MODE="no-user-data",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[1:] == ["digest-key", "encryption-key", "no-user-data"]


def test_database_url_must_be_postgres():
    result = _start("import django; django.setup()", SECRET_KEY="s" * 50, DATABASE_URL="sqlite:///db.sqlite3")
    assert result.returncode != 0
    assert "PostgreSQL" in result.stderr


def test_env_example_documents_every_setting_read_from_the_environment():
    settings_source = (BASE_DIR / "coderauth" / "settings.py").read_text()
    example = (BASE_DIR / ".env.example").read_text()
    read = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z_]+)"', settings_source))
    assert read, "no environment reads found"
    undocumented = sorted(name for name in read if f"{name}=" not in example)
    assert not undocumented, undocumented
