"""The agent lookup checks its own kept connection: no `SELECT 1` before it, and a dead connection is replaced.

Django's CONN_HEALTH_CHECKS sends a `SELECT 1` on a kept connection before the first statement of each request.
On agent routes the lookup itself goes first (core.db.fetchone_with_reconnect): one round trip a request instead
of two, and a connection the server ended is still replaced within the request. The test client leaves out
Django's start-of-request work, so each test does it (request_starts) where a real server would.
"""

from __future__ import annotations

import logging
import socket

import pytest
from django.db import connection
from django.urls import reverse

from core.http.errors import DATABASE_UNAVAILABLE_DETAIL
from tests.helpers.connections import messages_sent, request_starts, statements_run, terminate_app_connection
from tests.helpers.responses import assert_status

MANIFEST = "agents:agent-manifest"
APP_STATUS = "agents:agent-app-status"
STATUS_REPORT = {"app_slug": "code-server", "state": "working", "message": "indexing"}
HEALTH_CHECK = ("Query", '"SELECT 1"')


@pytest.fixture(autouse=True)
def _fresh_connection_afterwards(transactional_db):
    """A test that fails here may leave the app's connection dead; the database flush after it needs a live one."""
    yield
    connection.close()


@pytest.fixture(params=[True, False], ids=["prepared-lookup", "plain-lookup"])
def prepared_lookup(request, settings):
    """Both lookups (CODERAUTH_PREPARED_AGENT_LOOKUP): behind a pooler the plain one gets the same treatment."""
    settings.CODERAUTH_PREPARED_AGENT_LOOKUP = request.param
    return request.param


def test_an_agent_request_sends_no_health_check_select(agent_client, prepared_lookup):
    """One round trip for the manifest: the lookup is the only statement on the wire, with no `SELECT 1` before."""
    assert_status(agent_client.get(reverse(MANIFEST)), 200)
    request_starts()
    with messages_sent() as sent:
        assert_status(agent_client.get(reverse(MANIFEST)), 200)
    assert HEALTH_CHECK not in sent, sent
    assert statements_run(sent) == 1, sent


def test_an_agent_write_is_not_checked_either(agent_client):
    """The lookup proves the connection for the whole request: the write transaction after it (BEGIN, the quota,
    the insert, COMMIT) sends no `SELECT 1` of its own."""
    assert_status(agent_client.patch(reverse(APP_STATUS), STATUS_REPORT, format="json"), 200)
    request_starts()
    with messages_sent() as sent:
        assert_status(agent_client.patch(reverse(APP_STATUS), STATUS_REPORT, format="json"), 200)
    assert HEALTH_CHECK not in sent, sent


def test_other_requests_keep_the_health_check(member_client):
    """Only the agent lookup stands in for the check. Also shows that the trace sees the `SELECT 1` when it is sent,
    so the tests above can fail."""
    assert_status(member_client.get(reverse("agents:user-me")), 200)
    request_starts()
    with messages_sent() as sent:
        assert_status(member_client.get(reverse("agents:user-me")), 200)
    assert sent[0] == HEALTH_CHECK, sent


def test_a_dead_kept_connection_does_not_fail_the_next_agent_request(agent_client, prepared_lookup, caplog):
    """Regression: without the health check, a kept connection the server has ended (a restart, a failover,
    pg_terminate_backend) would fail the next agent request with a 503. The lookup finds it dead and runs again on
    a new connection."""
    caplog.set_level(logging.INFO)
    assert_status(agent_client.get(reverse(MANIFEST)), 200)
    ended = terminate_app_connection()
    request_starts()
    assert_status(agent_client.get(reverse(MANIFEST)), 200)
    assert connection.connection.info.backend_pid != ended
    assert [record.levelname for record in caplog.records if record.name == "core.db"] == ["INFO"]


def test_a_dead_kept_connection_does_not_fail_the_next_agent_write(agent_client):
    assert_status(agent_client.patch(reverse(APP_STATUS), STATUS_REPORT, format="json"), 200)
    ended = terminate_app_connection()
    request_starts()
    assert_status(agent_client.patch(reverse(APP_STATUS), STATUS_REPORT, format="json"), 200)
    assert connection.connection.info.backend_pid != ended


def test_a_dead_kept_connection_while_the_server_is_down_is_one_503(agent_client, caplog):
    """The retry meets the outage: the answer is the outage's 503 and its one warning line, as with the health
    check, never a 500."""
    assert_status(agent_client.get(reverse(MANIFEST)), 200)
    terminate_app_connection()
    settings_dict = connection.settings_dict
    saved = {key: settings_dict[key] for key in ("HOST", "PORT")}
    with socket.socket() as refusing:
        refusing.bind(("127.0.0.1", 0))  # bound, never listening: every connect is refused, as while PostgreSQL is down
        settings_dict.update(HOST="127.0.0.1", PORT=str(refusing.getsockname()[1]))
        try:
            request_starts()
            agent_client.raise_request_exception = False
            response = agent_client.get(reverse(MANIFEST))
        finally:
            connection.close()
            settings_dict.update(saved)
    assert_status(response, 503)
    assert response.json() == {"detail": DATABASE_UNAVAILABLE_DETAIL, "request_id": response["X-Request-ID"]}
    warnings = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert [record.name for record in warnings] == ["core.http.errors"], [r.getMessage() for r in warnings]
