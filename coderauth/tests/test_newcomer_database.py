"""`python -m coderauth.embedded_db ensure-database`: `make run` and `make manage` create DATABASE_URL's
database when it is missing, or stop with one line that says why. Against the suite's own PostgreSQL server."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from django.conf import settings
from psycopg import sql

BASE_DIR = Path(__file__).resolve().parents[2]


def _server() -> dict[str, str]:
    database = settings.DATABASES["default"]
    return {
        "host": database["HOST"] or "localhost",
        "port": str(database["PORT"] or 5432),
        "user": database["USER"],
        "password": database["PASSWORD"],
    }


def _url(name: str, *, user: str | None = None, password: str | None = None, port: str | None = None) -> str:
    """A DATABASE_URL for `name` on the suite's server; a socket directory goes in ?host= as `make run` writes it."""
    server = _server()
    credentials = quote(user or server["user"], safe="")
    if password or server["password"]:
        credentials += ":" + quote(password or server["password"], safe="")
    port = port or server["port"]
    if server["host"].startswith("/"):
        return f"postgres://{credentials}@:{port}/{quote(name)}?host={quote(server['host'])}"
    return f"postgres://{credentials}@{server['host']}:{port}/{quote(name)}"


def _admin() -> psycopg.Connection:
    server = _server()
    return psycopg.connect(**{key: value for key, value in server.items() if value}, dbname="postgres", autocommit=True)


def _exists(name: str) -> bool:
    with _admin() as connection:
        return connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def _drop(name: str) -> None:
    with _admin() as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def _ensure(*args: str, **environment: str) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "coderauth.embedded_db", "ensure-database", *args],
        cwd=BASE_DIR,
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def missing_name():
    # Upper case and a hyphen: the name only works as a quoted identifier.
    name = f"Newcomer-{secrets.token_hex(4)}"
    yield name
    _drop(name)


def test_a_missing_database_is_created_once(missing_name):
    assert not _exists(missing_name)

    created = _ensure(_url(missing_name))
    assert created.returncode == 0, created.stderr
    assert created.stderr.startswith(f"Created database {missing_name!r}")
    assert _exists(missing_name)

    again = _ensure(_url(missing_name))
    assert again.returncode == 0, again.stderr
    assert again.stderr == ""


def test_the_url_is_read_from_database_url_by_default(missing_name):
    result = _ensure(DATABASE_URL=_url(missing_name))
    assert result.returncode == 0, result.stderr
    assert _exists(missing_name)


def test_with_database_script_creates_it_before_the_command(missing_name):
    """The wiring `make run` and `make manage` use: the database exists by the time the command starts."""
    result = subprocess.run(  # noqa: S603 - fixed argv
        ["scripts/with-database.sh", "--create-database", sys.executable, "-c", "print('command ran')"],
        cwd=BASE_DIR,
        env={**os.environ, "DATABASE_URL": _url(missing_name)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "command ran\n"
    assert _exists(missing_name)


def test_unreachable_server_is_one_line_without_the_password():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    password = "never-print-" + secrets.token_hex(4)
    url = f"postgres://someone:{password}@127.0.0.1:{port}/coderauth"

    result = _ensure(url)

    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: cannot reach PostgreSQL at 127.0.0.1:{port} (")
    assert password not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


@pytest.fixture
def role_without_createdb():
    role, password = f"newcomer_{secrets.token_hex(4)}", secrets.token_hex(8)
    with _admin() as connection:
        connection.execute(
            sql.SQL("CREATE ROLE {} LOGIN NOCREATEDB PASSWORD {}").format(sql.Identifier(role), sql.Literal(password))
        )
    yield role, password
    with _admin() as connection:
        connection.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_a_user_who_may_not_create_databases_is_told_what_to_run(missing_name, role_without_createdb):
    role, password = role_without_createdb

    result = _ensure(_url(missing_name, user=role, password=password))

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: database {missing_name!r} does not exist at {_server()['host']}:{_server()['port']} and user "
        f'{role!r} may not create it; as a superuser run: CREATE DATABASE "{missing_name}" OWNER "{role}";'
    ]
    assert password not in result.stderr
    assert not _exists(missing_name)


def test_a_url_that_is_not_postgresql_is_refused_without_echoing_it():
    result = _ensure("mysql://root:hunter2@db.example.com/coderauth")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: DATABASE_URL must point at PostgreSQL (postgres://user:password@host:port/name)"
    ]
