"""Real app servers for the tests: gunicorn processes on loopback, on the test process's database and keys."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from urllib.parse import quote

import httpx
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
    """`gunicorn coderauth.wsgi` with one sync worker (every request reaches the same process) unless `workers`
    says otherwise; `environment` adds or overrides variables of the server's environment (e.g. lowered limits)."""

    def __init__(self, log_path: Path, *, workers: int = 1, environment: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(  # noqa: S603 - a fixed command line
            [str(GUNICORN), "coderauth.wsgi", "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers)],
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
