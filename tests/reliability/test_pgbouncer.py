"""Two app servers behind a real PgBouncer (Debian's, 1.18) in front of one PostgreSQL.

This is the deployment of docs/scaling.md: stateless app processes share the database through a pooler. What
holds on direct connections must hold there: agent requests are served, a mode refuses what it leaves out, and a
change made through one server binds the other on its very next request.

In transaction mode a server connection is lent for one transaction only, and PgBouncer before 1.21 does not
follow protocol-level prepared statements, which the agent lookup is (core/db.py). The first case runs the
documented setting for such a pooler, CODERAUTH_PREPARED_AGENT_LOOKUP=false; the second runs session mode, where
the prepared lookup stays on; the third records what the prepared lookup does through transaction mode.
"""

from __future__ import annotations

import re
import threading

import httpx
import pytest
from django.db import connection
from django.urls import reverse

from audit import export_slots
from tests.helpers.audit import make_event
from tests.helpers.factories import AgentFactory, AuditorFactory, WorkspaceFactory, mode
from tests.reliability.harness import Person, person
from tests.reliability.servers import AppServer, PgBouncer


def _send(server: AppServer, method: str, route: str, token: str, *args, json=None) -> httpx.Response:
    url = server.url + reverse(route, args=args)
    return httpx.request(method, url, headers={"Authorization": f"Bearer {token}"}, json=json, timeout=30)


def _transactions(pgbouncer: PgBouncer) -> int:
    """Transactions PgBouncer has passed to the test database so far."""
    return next(
        row["total_xact_count"] for row in pgbouncer.admin("SHOW STATS") if row["database"] == pgbouncer.database
    )


@pytest.fixture
def behind_pgbouncer(transactional_db, tmp_path):
    """Starts PgBouncer (`pool_mode`, `pool_size` server connections) and two gunicorn servers on it; stops the
    servers, then PgBouncer (closing its server connections), before the test database is flushed."""
    started = []

    def start(
        *, pool_size: int, workers: int, prepared_lookup: bool, pool_mode: str = "transaction"
    ) -> tuple[PgBouncer, AppServer, AppServer]:
        pgbouncer = PgBouncer(tmp_path / "pgbouncer.log", pool_mode=pool_mode, pool_size=pool_size)
        started.append(pgbouncer)
        pgbouncer.wait_ready()
        environment = {
            "DATABASE_URL": pgbouncer.database_url,
            "CODERAUTH_PREPARED_AGENT_LOOKUP": "true" if prepared_lookup else "false",
        }
        servers = [AppServer(tmp_path / f"gunicorn-{n}.log", workers=workers, environment=environment) for n in (1, 2)]
        started.extend(servers)
        for server in servers:
            server.wait_ready()
        return pgbouncer, *servers

    yield start
    for process in reversed(started):
        process.stop()


def _issue_agent_token(server: AppServer, owner, agent) -> tuple[str, str]:
    issued = _send(server, "POST", "agents:agent-token-list", owner.token, agent.pk, json={"name": "pgbouncer"})
    assert issued.status_code == 201, issued.text
    return issued.json()["token"], issued.json()["id"]


def _serve_refuse_and_revoke(pgbouncer: PgBouncer, one: AppServer, two: AppServer, admin, owner) -> None:
    """Agent requests on both servers, a mode refusal and a revocation made through server 1 seen by server 2 on
    its very next request, every request through PgBouncer and none failing."""
    workspace = WorkspaceFactory(owner=owner.user, permission_mode=mode("default"))
    agent = AgentFactory(workspace=workspace)
    before = _transactions(pgbouncer)
    agent_token, token_id = _issue_agent_token(one, owner, agent)

    for round_number in range(3):
        for server in (one, two, one, two):
            manifest = _send(server, "GET", "agents:agent-manifest", agent_token)
            assert manifest.status_code == 200, manifest.text
            assert manifest.json()["agent_id"] == str(agent.pk)
        status = {"app_slug": "claude", "state": "working", "message": f"round {round_number}"}
        reported = _send(two, "PATCH", "agents:agent-app-status", agent_token, json=status)
        assert reported.status_code == 200, reported.text
        assert _send(two, "GET", "agents:agent-gitsshkey", agent_token).status_code == 200
        tightened = _send(
            one, "PATCH", "agents:workspace-detail", owner.token, workspace.pk, json={"permission_mode": "no-user-data"}
        )
        assert tightened.status_code == 200, tightened.text
        refused = _send(two, "GET", "agents:agent-gitsshkey", agent_token)
        assert refused.status_code == 403, refused.text
        assert refused.json()["denied_by"] == "permission_mode"
        loosened = _send(
            one, "PATCH", "agents:workspace-detail", admin.token, workspace.pk, json={"permission_mode": "default"}
        )
        assert loosened.status_code == 200, loosened.text
    assert agent.app_statuses.count() == 3

    assert _send(two, "GET", "agents:agent-manifest", agent_token).status_code == 200  # warm on server 2
    revoked = _send(one, "DELETE", "agents:agent-token-detail", owner.token, agent.pk, token_id)
    assert revoked.status_code == 204, revoked.text
    assert _send(two, "GET", "agents:agent-manifest", agent_token).status_code == 401
    assert _send(one, "GET", "agents:agent-manifest", agent_token).status_code == 401

    # The traffic went through PgBouncer, not around it.
    assert _transactions(pgbouncer) > before
    for server in (one, two):
        assert "Traceback" not in server.output(), server.output()


def test_two_servers_behind_pgbouncer_transaction_pooling_serve_and_revoke(behind_pgbouncer, admin, owner):
    """Through PgBouncer 1.18 in transaction mode, with CODERAUTH_PREPARED_AGENT_LOOKUP=false: agent requests
    are served by both servers, a mode change and a revocation made through server 1 bind server 2 on its very
    next request, and no request fails.

    Four app processes share two server connections, so consecutive requests of one process run on different
    PostgreSQL sessions: anything that relied on session state (a prepared statement, a SET, a temporary table)
    would fail here, and a cache of decisions in a process would serve a stale answer."""
    pgbouncer, one, two = behind_pgbouncer(pool_size=2, workers=2, prepared_lookup=False)
    _serve_refuse_and_revoke(pgbouncer, one, two, admin, owner)


def test_two_servers_behind_pgbouncer_session_pooling_keep_the_prepared_lookup(behind_pgbouncer, admin, owner):
    """Through PgBouncer in session mode the prepared lookup stays on: each app connection keeps one server
    connection for as long as it is open, so its prepared statement is where it left it (docs/scaling.md,
    "PgBouncer"). The same requests as above, and no request fails."""
    pgbouncer, one, two = behind_pgbouncer(pool_size=4, workers=2, prepared_lookup=True, pool_mode="session")
    _serve_refuse_and_revoke(pgbouncer, one, two, admin, owner)


def test_prepared_agent_lookup_through_pgbouncer_before_1_21_fails_closed(behind_pgbouncer, owner):
    """With the prepared lookup left on behind PgBouncer 1.18 in transaction mode, agent requests fail: each app
    process names its prepared statement `_pg3_0` on what it believes is its own session, but PgBouncer hands
    that session to the other process, where PostgreSQL answers 'prepared statement "_pg3_0" already exists'.
    The request is a 500 and a revoked token is never served: the failure is closed, yet agents are refused at
    random, hence CODERAUTH_PREPARED_AGENT_LOOKUP=false for such a pooler (docs/operations.md, "Settings").

    One server connection and one worker per server make the clash certain on server 2's first agent request."""
    _, one, two = behind_pgbouncer(pool_size=1, workers=1, prepared_lookup=True)
    workspace = WorkspaceFactory(owner=owner.user, permission_mode=mode("default"))
    agent = AgentFactory(workspace=workspace)
    agent_token, token_id = _issue_agent_token(one, owner, agent)

    assert _send(one, "GET", "agents:agent-manifest", agent_token).status_code == 200  # prepares _pg3_0
    clashed = _send(two, "GET", "agents:agent-manifest", agent_token)
    assert clashed.status_code == 500, clashed.text
    assert re.search(r'prepared statement "_pg3_\d+" already exists', two.output()), two.output()

    revoked = _send(one, "DELETE", "agents:agent-token-detail", owner.token, agent.pk, token_id)
    assert revoked.status_code == 204, revoked.text
    for server in (one, two, one, two, one, two):
        answer = _send(server, "GET", "agents:agent-manifest", agent_token)
        assert answer.status_code in (401, 500), answer.text


def _export_slots_held() -> int:
    """Export slots (advisory locks in their namespace) held on the test database by any session."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s::oid AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            [export_slots._NAMESPACE],
        )
        return cursor.fetchone()[0]


def test_export_slots_hold_their_limit_through_pgbouncer_transaction_pooling(behind_pgbouncer):
    """Regression: export slots were taken and released in autocommit, so through a pooler in transaction mode the
    release could land on another server connection than the lock; a probe left 5 slots held after 60 exports,
    and later exports were refused at random. Now a slot is taken, held and released in one transaction, which
    PgBouncer keeps on one server connection: after many concurrent exports through two servers none is left."""
    pgbouncer, one, two = behind_pgbouncer(pool_size=2, workers=2, prepared_lookup=False)
    auditors = [person(AuditorFactory) for _ in range(4)]
    for number in range(30):
        make_event("user.created", details={"n": number})
    statuses: list[int] = []
    errors: list[BaseException] = []

    def export_repeatedly(auditor: Person, server: AppServer) -> None:
        try:
            for _ in range(8):
                response = _send(server, "GET", "audit:audit-export", auditor.token)
                statuses.append(response.status_code)
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [
        threading.Thread(target=export_repeatedly, args=(auditor, (one, two)[number % 2]))
        for number, auditor in enumerate(auditors)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert len(statuses) == 32
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(200) >= 2
    assert _export_slots_held() == 0, "export slots outlived their exports"
    # And the limit did not drift: one auditor's exports, one after another, all run.
    for server in (one, two, one, two):
        assert _send(server, "GET", "audit:audit-export", auditors[0].token).status_code == 200
    assert _export_slots_held() == 0
    for server in (one, two):
        assert "Traceback" not in server.output(), server.output()
