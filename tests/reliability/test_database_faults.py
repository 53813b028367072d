"""PostgreSQL goes away under a running app server, then comes back.

A throwaway PostgreSQL (pgserver's binaries, in a temporary directory, on a free loopback port) serves a real
gunicorn. After some acknowledged writes (a sign-in, a workspace, an agent, an agent token, a status report,
a web session) the server is stopped while a client keeps creating workspaces. While it is down every route
must answer 503 with Retry-After (JSON for the API, the agent routes and /readyz, a plain page for the web UI),
/healthz 200, never a 500, and the log gets one warning line per failed request. Started again, the app must
serve within seconds without a restart, and every write acknowledged before the fault must still be there.

Both shutdown modes run: `fast` (an orderly stop, sessions terminated) and `immediate` (a crash: no
checkpoint, the write-ahead log is replayed on start). `pytest -s` prints the timings. A second test restarts
the server between requests: the next agent request meets its worker's dead connection without Django's
`SELECT 1` check in front of it, and must still succeed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
DATABASE = "coderauth"
DB_PASSWORD = f"pw-{secrets.token_hex(8)}"  # trust authentication ignores it; it must never reach a log or answer
ADMIN_PASSWORD = f"Admin-{secrets.token_urlsafe(12)}"
FIRST_503_WITHIN_SECONDS = 2.0
RECOVERY_WITHIN_SECONDS = 5.0
POLL_SECONDS = 0.05


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ThrowawayPostgres:
    """A private PostgreSQL on 127.0.0.1:<port>. pgserver initialises it (as its own system user when run as
    root); from then on pg_ctl starts and stops it, listening on loopback TCP like a real server."""

    def __init__(self, directory: Path):
        warnings.filterwarnings("ignore", module="platformdirs")
        logging.getLogger("pgserver").setLevel(logging.WARNING)  # it logs every pg_ctl run at INFO
        import pgserver
        from pgserver import _commands

        self._pg_ctl = _commands.pg_ctl
        self.pgdata = directory / "pgdata"
        self.log = directory / "postgres.log"
        self.port = free_port()
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root; pgserver runs it as its own system user
            from pgserver.utils import ensure_user_exists

            ensure_user_exists("pgserver")
            shutil.chown(directory, user="pgserver")
        server = pgserver.get_server(self.pgdata, cleanup_mode=None)
        self.system_user = server.system_user
        self.stop("fast")
        with open(self.pgdata / "postgresql.auto.conf", "a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.pgdata}'\n"
            )
        self.start()
        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {DATABASE}")

    def url(self, database: str = DATABASE) -> str:
        return f"postgres://postgres:{DB_PASSWORD}@127.0.0.1:{self.port}/{database}?connect_timeout=2"

    def start(self) -> None:
        self._pg_ctl(["-w", "-t", "60", "-l", str(self.log), "start"], pgdata=self.pgdata, user=self.system_user)

    def stop(self, mode: str) -> None:
        self._pg_ctl(["-w", "-t", "60", "-m", mode, "stop"], pgdata=self.pgdata, user=self.system_user)

    def running(self) -> bool:
        return (self.pgdata / "postmaster.pid").exists()


@dataclass
class Answer:
    label: str
    status: int
    content_type: str
    retry_after: str | None
    request_id: str
    body: str

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class App:
    """A gunicorn serving coderauth over the throwaway database; every answer it gives is kept for the checks."""

    base: str
    env: dict[str, str]
    log: Path
    answers: list[Answer] = field(default_factory=list)

    def call(self, client: httpx.Client, label: str, method: str, path: str, **kwargs) -> tuple[Answer, httpx.Response]:
        response = client.request(method, self.base + path, **kwargs)
        answer = Answer(
            label=label,
            status=response.status_code,
            content_type=response.headers.get("Content-Type", ""),
            retry_after=response.headers.get("Retry-After"),
            request_id=response.headers.get("X-Request-ID", ""),
            body=response.text,
        )
        self.answers.append(answer)
        return answer, response


@pytest.fixture
def postgres() -> Iterator[ThrowawayPostgres]:
    directory = Path(tempfile.mkdtemp(prefix="coderauth-faults-"))  # short: a socket path has a length limit
    server = None
    try:
        server = ThrowawayPostgres(directory)
        yield server
    finally:
        if server is not None and server.running():
            server.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def app(postgres, tmp_path) -> Iterator[App]:
    env = {key: value for key, value in os.environ.items() if key not in {"TEST_DATABASE_NAME"}}
    env.update(
        DJANGO_SETTINGS_MODULE="coderauth.settings",
        DATABASE_URL=postgres.url(),
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1",
        # Plain HTTP on loopback: no HTTPS redirect, cookies without the Secure flag.
        SERVED_OVER_HTTPS="false",
        SECURE_SSL_REDIRECT="false",
        SESSION_COOKIE_SECURE="false",
        CSRF_COOKIE_SECURE="false",
        DJANGO_SUPERUSER_PASSWORD=ADMIN_PASSWORD,
        LOG_LEVEL="INFO",
    )
    manage = [sys.executable, "manage.py"]
    for command in (
        ["migrate", "--no-input"],
        ["createsuperuser", "--no-input", "--username", "admin", "--email", "a@example.com"],
    ):
        done = subprocess.run([*manage, *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)  # noqa: S603
        assert done.returncode == 0, done.stderr[-3000:]
    port = free_port()
    log = tmp_path / "gunicorn.log"
    with open(log, "w") as output:
        server = subprocess.Popen(  # noqa: S603 - fixed argv
            [
                sys.executable,
                "-m",
                "gunicorn",
                "coderauth.wsgi",
                "--workers",
                "2",
                "--timeout",
                "60",
                "--bind",
                f"127.0.0.1:{port}",
            ],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        yield App(base=base, env=env, log=log)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


class WorkspaceWriter(threading.Thread):
    """Creates workspaces one after another until told to stop; remembers which ones were acknowledged."""

    def __init__(self, app: App, token: str, prefix: str):
        super().__init__(daemon=True)
        self.app = app
        self.prefix = prefix
        self.headers = {"Authorization": f"Bearer {token}"}
        self.acknowledged: list[str] = []
        self.unexpected: list[Answer] = []
        self.stopping = threading.Event()
        self.saw_503 = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            number = 0
            while not self.stopping.is_set():
                number += 1
                body = {"name": f"{self.prefix}-{number}"}
                answer, response = self.app.call(
                    client, "writer", "POST", "/api/v2/workspaces", json=body, headers=self.headers
                )
                if answer.status == 201:
                    self.acknowledged.append(response.json()["id"])
                    continue
                if answer.status == 503:
                    self.saw_503.set()
                else:
                    self.unexpected.append(answer)
                time.sleep(POLL_SECONDS)


def _web_session(app: App) -> httpx.Client:
    """A signed-in browser: the sign-in form with its CSRF token, then the session cookie."""
    browser = httpx.Client(timeout=10)
    app.call(browser, "web sign-in form", "GET", "/login/")
    answer, _ = app.call(
        browser,
        "web sign-in",
        "POST",
        "/login/",
        data={"username": "admin", "password": ADMIN_PASSWORD, "csrfmiddlewaretoken": browser.cookies["csrftoken"]},
    )
    assert answer.status == 302, answer.body[:500]
    assert "sessionid" in browser.cookies
    return browser


def _assert_json_503(answer: Answer) -> None:
    assert answer.status == 503, f"{answer.label}: {answer.status} {answer.body[:300]}"
    assert answer.content_type == "application/json", answer
    assert answer.retry_after and int(answer.retry_after) > 0, answer
    body = answer.json()
    assert body["detail"] and body["request_id"] == answer.request_id, body


def _assert_page_503(answer: Answer) -> None:
    assert answer.status == 503, f"{answer.label}: {answer.status} {answer.body[:300]}"
    assert answer.content_type.startswith("text/html"), answer
    assert answer.retry_after and int(answer.retry_after) > 0, answer
    assert "Temporarily unavailable" in answer.body and answer.request_id in answer.body
    assert "Traceback" not in answer.body and "<script" not in answer.body


@dataclass
class Principals:
    """What the outage must not break: a user session token, an agent token, a signed-in browser."""

    api: httpx.Client
    user: dict[str, str]
    user_token: str
    agent: dict[str, str]
    browser: httpx.Client


@dataclass
class Timings:
    shutdown: str
    stop_seconds: float
    first_503_seconds: float
    start_seconds: float
    recovery_seconds: float
    failed_after_start: int
    acknowledged_during: int

    def __str__(self) -> str:
        return (
            f"{self.shutdown} shutdown: pg_ctl stop {self.stop_seconds:.2f} s, "
            f"first 503 {self.first_503_seconds:.3f} s after it; pg_ctl start {self.start_seconds:.2f} s, "
            f"first success {self.recovery_seconds:.3f} s after it "
            f"({self.failed_after_start} failed request(s) in between); {self.acknowledged_during} workspaces "
            f"acknowledged by the writer up to the fault"
        )


STATUS_REPORT = {"app_slug": "coder", "state": "working", "message": "status"}


def _set_up(app: App) -> tuple[Principals, list[str]]:
    """Acknowledged writes before any fault: a sign-in, a workspace, an agent, its token, a report, a web session."""
    api = httpx.Client(timeout=10)
    answer, login = app.call(
        api, "login", "POST", "/api/v2/users/login", json={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert answer.status == 201, answer.body
    user_token = login.json()["session_token"]
    user = {"Authorization": f"Bearer {user_token}"}
    _, workspace = app.call(api, "workspace", "POST", "/api/v2/workspaces", json={"name": "before"}, headers=user)
    workspace_id = workspace.json()["id"]
    _, agent = app.call(
        api, "agent", "POST", f"/api/v2/workspaces/{workspace_id}/agents", json={"name": "main"}, headers=user
    )
    _, issued = app.call(
        api,
        "agent token",
        "POST",
        f"/api/v2/workspaceagents/{agent.json()['id']}/tokens",
        json={"name": "a"},
        headers=user,
    )
    assert issued.status_code == 201, issued.text
    agent_auth = {"Authorization": f"Bearer {issued.json()['token']}"}
    answer, _ = app.call(
        api, "agent write", "PATCH", "/api/v2/workspaceagents/me/app-status", json=STATUS_REPORT, headers=agent_auth
    )
    assert answer.status == 200, answer.body
    browser = _web_session(app)
    assert app.call(browser, "web page", "GET", "/")[0].status == 200
    return Principals(api=api, user=user, user_token=user_token, agent=agent_auth, browser=browser), [workspace_id]


def _assert_everything_answers_503(app: App, who: Principals) -> None:
    """Every kind of route, a few rounds so that both workers take their share of the outage."""
    csrf = {"X-CSRFToken": who.browser.cookies["csrftoken"]}
    routes = [
        ("user read", "GET", "/api/v2/users/me", {"headers": who.user}),
        ("user write", "POST", "/api/v2/workspaces", {"headers": who.user, "json": {"name": "during"}}),
        ("audit log", "GET", "/api/v2/audit", {"headers": who.user}),
        ("agent read", "GET", "/api/v2/workspaceagents/me/manifest", {"headers": who.agent}),
        ("agent secret", "GET", "/api/v2/workspaceagents/me/gitsshkey", {"headers": who.agent}),
        (
            "agent write",
            "PATCH",
            "/api/v2/workspaceagents/me/app-status",
            {"headers": who.agent, "json": STATUS_REPORT},
        ),
        ("sign-in", "POST", "/api/v2/users/login", {"json": {"username": "admin", "password": ADMIN_PASSWORD}}),
        ("readiness", "GET", "/readyz", {}),
    ]
    for _round in range(3):
        for label, method, path, kwargs in routes:
            _assert_json_503(app.call(who.api, label, method, path, **kwargs)[0])
        _assert_page_503(app.call(who.browser, "web page", "GET", "/")[0])
        _assert_page_503(app.call(who.browser, "web form", "POST", "/workspaces/bulk-mode/", data={}, headers=csrf)[0])
        liveness = app.call(who.api, "liveness", "GET", "/healthz")[0]
        assert liveness.status == 200, liveness


def _outage(postgres: ThrowawayPostgres, app: App, who: Principals, shutdown: str) -> tuple[Timings, list[str]]:
    """Stop PostgreSQL under a writer, check the 503s, start it, wait for the first success."""
    writer = WorkspaceWriter(app, who.user_token, prefix=shutdown)
    writer.start()
    time.sleep(0.5)  # acknowledged writes right up to the fault

    began = time.monotonic()
    postgres.stop(shutdown)
    stopped = time.monotonic()
    while True:
        first = app.call(who.api, "first after stop", "GET", "/api/v2/users/me", headers=who.user)[0]
        if first.status == 503:
            break
        assert time.monotonic() - stopped < FIRST_503_WITHIN_SECONDS, first
        time.sleep(POLL_SECONDS)
    first_503 = time.monotonic() - stopped
    _assert_json_503(first)
    assert writer.saw_503.wait(10), "the writer never saw the outage"
    writer.stopping.set()
    writer.join(15)
    assert writer.acknowledged and not writer.unexpected, writer.unexpected

    _assert_everything_answers_503(app, who)

    began_start = time.monotonic()
    postgres.start()
    started = time.monotonic()
    failed_after_start = []
    while True:
        answer = app.call(who.api, "recovery", "GET", "/api/v2/users/me", headers=who.user)[0]
        if answer.status == 200:
            break
        failed_after_start.append(answer)
        assert time.monotonic() - started < RECOVERY_WITHIN_SECONDS, failed_after_start
        time.sleep(POLL_SECONDS)
    recovery = time.monotonic() - started
    assert len(failed_after_start) <= 1, failed_after_start
    for failed in failed_after_start:
        _assert_json_503(failed)

    # Every process serves again, with the credentials issued before the fault, without a restart.
    for _round in range(4):
        assert app.call(who.api, "ready", "GET", "/readyz")[0].status == 200
        assert (
            app.call(who.api, "agent", "GET", "/api/v2/workspaceagents/me/manifest", headers=who.agent)[0].status == 200
        )
        assert app.call(who.browser, "web page", "GET", "/")[0].status == 200
    timings = Timings(
        shutdown=shutdown,
        stop_seconds=stopped - began,
        first_503_seconds=first_503,
        start_seconds=started - began_start,
        recovery_seconds=recovery,
        failed_after_start=len(failed_after_start),
        acknowledged_during=len(writer.acknowledged),
    )
    return timings, writer.acknowledged


def test_database_outages_answer_503_and_recover_without_a_restart(postgres, app):
    """No 500 and no lost acknowledged write across two PostgreSQL outages, an orderly stop and a crash
    (`immediate`: no checkpoint, the log is replayed on start); each recovery takes seconds, not a restart."""
    who, acknowledged = _set_up(app)
    with psycopg.connect(postgres.url()) as connection:
        last_event = connection.execute("SELECT id, hash FROM audit_auditevent ORDER BY id DESC LIMIT 1").fetchone()

    timings = []
    for shutdown in ("fast", "immediate"):
        cycle, written = _outage(postgres, app, who, shutdown)
        timings.append(cycle)
        acknowledged += written
        print(f"\ndatabase faults, {cycle}")

    # Nothing acknowledged before a fault is lost, and the audit chain is whole.
    with psycopg.connect(postgres.url()) as connection:
        rows = connection.execute("SELECT id FROM agents_workspace WHERE id = ANY(%s::uuid[])", [acknowledged])
        present = {str(row[0]) for row in rows}
        kept = connection.execute("SELECT id, hash FROM audit_auditevent WHERE id = %s", [last_event[0]]).fetchone()
    assert set(acknowledged) <= present, set(acknowledged) - present
    assert kept == last_event
    verified = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "manage.py", "verify_audit"],
        cwd=ROOT,
        env=app.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr

    # Never a 500; one warning line per failed request, naming its request id; no traceback, no secret.
    assert not [answer for answer in app.answers if answer.status >= 500 and answer.status != 503]
    failed = [answer for answer in app.answers if answer.status == 503]
    log = app.log.read_text()
    logged = re.findall(r"WARNING core\.http\.errors Database unavailable: .*\(request (\w+)\)", log)
    assert sorted(logged) == sorted(answer.request_id for answer in failed)
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
    assert DB_PASSWORD not in log and not any(DB_PASSWORD in answer.body for answer in app.answers)
    print(
        f"database faults: {len(failed)} requests answered 503 over both outages, none 500; "
        f"{len(acknowledged)} acknowledged workspaces, all kept; {len(logged)} warning lines"
    )


def _kept_connections(postgres: ThrowawayPostgres) -> int:
    """The app's connections to its database, not counting the one asking."""
    with psycopg.connect(postgres.url()) as connection:
        return connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend' "
            "AND pid <> pg_backend_pid()",
            [DATABASE],
        ).fetchone()[0]


def test_a_restart_between_requests_does_not_fail_the_next_agent_request(postgres, app):
    """PostgreSQL restarts while no request runs, so every worker's kept connection is dead when the next agent
    request comes. Agent requests skip Django's `SELECT 1` check of a kept connection (CONN_HEALTH_CHECKS): the
    token lookup finds the connection dead itself and runs again on a new one, so they answer 200 as they did
    with the check. Both an orderly stop and a crash."""
    who, _ = _set_up(app)
    manifest = "/api/v2/workspaceagents/me/manifest"
    for shutdown in ("fast", "immediate"):
        deadline = time.monotonic() + 10
        while _kept_connections(postgres) < 2:  # both workers hold a connection
            assert app.call(who.api, "agent before", "GET", manifest, headers=who.agent)[0].status == 200
            assert time.monotonic() < deadline, "the two workers never both held a connection"
        postgres.stop(shutdown)
        postgres.start()
        after = [app.call(who.api, "agent after", "GET", manifest, headers=who.agent)[0] for _ in range(8)]
        assert [answer.status for answer in after] == [200] * 8, after

    log = app.log.read_text()
    assert "Database unavailable" not in log and "Traceback" not in log, log[-3000:]
    # The first agent request of a worker after each restart met its dead connection and retried.
    assert log.count("Kept database connection found dead") >= 2, log[-3000:]
