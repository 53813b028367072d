"""Real app servers for the tests: gunicorn processes on loopback, on the test process's database and keys."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg
from django.conf import settings
from django.db import connection
from django.urls import reverse

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).parent / "gunicorn"


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url_of_this_run() -> str:
    """The database pytest created for this run (connection.settings_dict names it once it exists)."""
    database = connection.settings_dict
    credentials = quote(database["USER"] or "", safe="")
    if database["PASSWORD"]:
        credentials += f":{quote(database['PASSWORD'], safe='')}"
    name = quote(database["NAME"], safe="")
    host = database["HOST"] or "127.0.0.1"
    if host.startswith("/"):  # a Unix socket directory (the embedded PostgreSQL): settings.py reads ?host=
        port = f"&port={database['PORT']}" if database["PORT"] else ""
        return f"postgres://{credentials}@/{name}?host={quote(host, safe='/')}{port}"
    return f"postgres://{credentials}@{host}:{database['PORT'] or 5432}/{name}"


def server_environment() -> dict[str, str]:
    """The production settings module with this process's secrets, so token digests and ciphertexts match."""
    keys = {}
    for name in dir(settings):
        if not name.startswith("CODERAUTH_"):
            continue  # before getattr: under override_settings dir() also lists private attributes getattr refuses
        value = getattr(settings, name)
        if isinstance(value, str):
            keys[name] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
            keys[name] = ",".join(value)  # django-environ's list format
    return {
        **os.environ,
        **keys,
        "DJANGO_SETTINGS_MODULE": "coderauth.settings",
        "DEBUG": "false",
        "SECRET_KEY": settings.SECRET_KEY,
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": database_url_of_this_run(),
        # Plain HTTP on loopback: no redirect to HTTPS.
        "SERVED_OVER_HTTPS": "false",
        "SECURE_SSL_REDIRECT": "false",
        "LOG_LEVEL": "WARNING",
    }


class AppServer:
    """`gunicorn coderauth.wsgi` with the production configuration (coderauth/gunicorn.py) and one sync worker
    (every request reaches the same process) unless `workers` says otherwise; `environment` adds or overrides
    variables of the server's environment (e.g. lowered limits)."""

    def __init__(self, log_path: Path, *, workers: int = 1, environment: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(  # noqa: S603 - a fixed command line
            [str(GUNICORN), "--config", "python:coderauth.gunicorn", "coderauth.wsgi"]
            + ["--bind", f"127.0.0.1:{self.port}", "--workers", str(workers)],
            cwd=ROOT,
            env={**server_environment(), **(environment or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Its own process group, so stop() can end the workers too should the master be killed.
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        """Up once an agent route refuses a request without a token (a 401 needs the whole app loaded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if httpx.get(self.url + reverse("agents:agent-manifest"), timeout=5).status_code == 401:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"gunicorn on port {self.port} did not start:\n{self.output()}")

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        """Graceful first; then SIGKILL to the whole group. Killing only the master would orphan a worker stuck in
        a send, whose open transaction would then block the test database's flush."""
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self._log.close()


PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


class PgBouncer:
    """A real PgBouncer on loopback in front of the test database, from a generated ini and userlist.

    Trust authentication on both sides, as the test PostgreSQL uses. PgBouncer refuses to run as root, so under
    root (a CI container) it switches with `-u` to a user that can reach the database: the owner of its socket
    directory (the embedded PostgreSQL's), else `nobody`; its run directory is then one that user can write. Its
    unix socket and pidfile live there, never in the system's /var/run. Its log is read back with `output()`."""

    def __init__(self, log_path: Path, *, pool_mode: str = "transaction", pool_size: int = 2):
        if not Path(PGBOUNCER).exists():
            raise RuntimeError(
                "pgbouncer is not installed: `make pgbouncer` (or `apt-get install pgbouncer`) installs it."
            )
        database = connection.settings_dict
        self.port = free_port()
        self.database = database["NAME"]
        self.log_path = log_path
        host = database["HOST"] or "127.0.0.1"
        self._run_as = None
        if os.geteuid() == 0:
            self._run_as = Path(host).owner() if host.startswith("/") else "nobody"
        # tmp_path's parents are private to the current user: under root the run directory must sit where the
        # user PgBouncer switches to can write.
        self.run_directory = Path(tempfile.mkdtemp(prefix="pgbouncer-")) if self._run_as else log_path.parent
        if self._run_as:
            shutil.chown(self.run_directory, user=self._run_as)
        user = database["USER"] or "postgres"
        userlist = self.run_directory / "userlist.txt"
        userlist.write_text(f'"{user}" ""\n')
        self.ini_path = self.run_directory / "pgbouncer.ini"
        self.ini_path.write_text(
            "[databases]\n"
            f"{self.database} = host={host} port={database['PORT'] or 5432} dbname={self.database} user={user}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            f"unix_socket_dir = {self.run_directory}\n"
            f"pidfile = {self.run_directory / 'pgbouncer.pid'}\n"
            "auth_type = trust\n"
            f"auth_file = {userlist}\n"
            f"admin_users = {user}\n"
            f"pool_mode = {pool_mode}\n"
            f"default_pool_size = {pool_size}\n"
            "max_client_conn = 200\n"
        )
        self._log = log_path.open("wb")
        command = [PGBOUNCER, *(["-u", self._run_as] if self._run_as else []), str(self.ini_path)]
        self.process = subprocess.Popen(  # noqa: S603 - a fixed command line
            command, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.user = user

    @property
    def database_url(self) -> str:
        """DATABASE_URL for an app server that goes through this PgBouncer."""
        return f"postgres://{quote(self.user, safe='')}@127.0.0.1:{self.port}/{quote(self.database, safe='')}"

    def wait_ready(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            with contextlib.suppress(psycopg.OperationalError):
                psycopg.connect(self.database_url, connect_timeout=2).close()
                return
            time.sleep(0.1)
        raise RuntimeError(f"pgbouncer on port {self.port} did not start:\n{self.output()}")

    def admin(self, command: str) -> list[dict]:
        """A command on PgBouncer's admin console (`SHOW POOLS`, `SHOW STATS`...), its rows as dicts."""
        url = f"postgres://{quote(self.user, safe='')}@127.0.0.1:{self.port}/pgbouncer"
        with psycopg.connect(url, autocommit=True, prepare_threshold=None) as admin:
            cursor = admin.execute(command)
            names = [column.name for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        """SIGTERM is PgBouncer's fast exit: its server connections close, so the test database can be flushed."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()
        if self._run_as:
            shutil.rmtree(self.run_directory, ignore_errors=True)
