"""While the database cannot be reached every request answers 503 with Retry-After, never a 500: JSON under /api/
and on /readyz, a plain page for web pages; /healthz keeps answering. One warning line per failed request.

The database is made unreachable for real: the connection is pointed at a loopback port that is bound but never
listens, so every connect is refused the way it is while PostgreSQL is down. The end-to-end run against a
PostgreSQL that is stopped and started again is tests/reliability/test_database_faults.py.
"""

from __future__ import annotations

import logging
import socket
import time
from contextlib import contextmanager

import psycopg
import pytest
from django.db import close_old_connections, connection
from django.urls import reverse
from rest_framework.test import APIClient

from core.http.errors import DATABASE_UNAVAILABLE_DETAIL, RETRY_AFTER_SECONDS
from tests.helpers.clients import client_logged_in
from tests.helpers.responses import assert_status

pytestmark = pytest.mark.usefixtures("transactional_db")

SENTINEL_PASSWORD = "db-password-sentinel-4711"


@contextmanager
def database_unreachable(*, silent: bool = False, connect_timeout: int | None = None):
    """The default connection aims at a loopback port that refuses every connect, or with `silent` one that
    accepts (the kernel completes the handshake) and never answers, like a server behind a partition. It also
    carries a password, which must never show."""
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))  # bound, never listening: a connect is refused at once
        if silent:
            blocker.listen(8)  # never accepted, never answered
        settings_dict = connection.settings_dict
        saved = {key: settings_dict[key] for key in ("HOST", "PORT", "PASSWORD", "OPTIONS")}
        connection.close()
        settings_dict.update(HOST="127.0.0.1", PORT=str(blocker.getsockname()[1]), PASSWORD=SENTINEL_PASSWORD)
        if connect_timeout is not None:
            settings_dict["OPTIONS"] = {**saved["OPTIONS"], "connect_timeout": connect_timeout}
        try:
            yield
        finally:
            connection.close()
            settings_dict.update(saved)


def assert_json_503(response) -> dict:
    assert_status(response, 503)
    assert response["Content-Type"] == "application/json", response["Content-Type"]
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    body = response.json()
    assert body == {"detail": DATABASE_UNAVAILABLE_DETAIL, "request_id": response["X-Request-ID"]}
    return body


def assert_page_503(response) -> str:
    assert_status(response, 503)
    assert response["Content-Type"].startswith("text/html"), response["Content-Type"]
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    page = response.content.decode()
    assert "Temporarily unavailable" in page
    assert response["X-Request-ID"] in page
    assert "Traceback" not in page and "<script" not in page and "OperationalError" not in page
    return page


def _routes(member_client, agent_client):
    """(label, client, method, url, body): user routes, management writes, the agent routes, the sign-in."""
    workspace_url = reverse("agents:workspace-detail", args=["00000000-0000-0000-0000-000000000000"])
    return [
        ("user read", member_client, "get", reverse("agents:user-me"), None),
        ("user write", member_client, "post", reverse("agents:workspace-list"), {"name": "during-outage"}),
        ("object read", member_client, "get", workspace_url, None),
        ("mode list", member_client, "get", reverse("policies:permission-mode-list"), None),
        ("audit log", member_client, "get", reverse("audit:audit-list"), None),
        ("agent read", agent_client, "get", reverse("agents:agent-manifest"), None),
        ("agent secret", agent_client, "get", reverse("agents:agent-gitsshkey"), None),
        (
            "agent write",
            agent_client,
            "patch",
            reverse("agents:agent-app-status"),
            {"app_slug": "x", "state": "idle", "message": "m"},
        ),
        ("sign-in", APIClient(), "post", reverse("agents:user-login"), {"username": "u", "password": "p"}),
        ("readiness", APIClient(), "get", reverse("readyz"), None),
    ]


@pytest.mark.parametrize("debug", [False, True])
def test_every_kind_of_api_route_answers_503_json_not_500(settings, member_client, agent_client, debug):
    """Regression: with PostgreSQL down every request answered 500 {"detail": "Internal server error."}."""
    settings.DEBUG = debug
    routes = _routes(member_client, agent_client)
    with database_unreachable():
        for label, client, method, url, body in routes:
            client.raise_request_exception = False
            response = getattr(client, method)(url, body, format="json")
            try:
                assert_json_503(response)
            except AssertionError as error:
                raise AssertionError(f"{label}: {method.upper()} {url}: {error}") from None


def test_a_signed_in_web_page_answers_a_plain_503_page(member):
    """The session lookup of a web page fails first: still the 503 page, without a traceback or a script."""
    browser = client_logged_in(member)
    browser.raise_request_exception = False
    with database_unreachable():
        for url in (reverse("ui:home"), reverse("ui:workspace-list"), "/admin/"):
            assert_page_503(browser.get(url))


def test_the_sign_in_form_answers_a_plain_503_page():
    browser = APIClient(enforce_csrf_checks=False)
    browser.raise_request_exception = False
    with database_unreachable():
        assert_page_503(browser.post(reverse("ui:login"), {"username": "someone", "password": "x"}))


def test_liveness_does_not_need_the_database(member):
    browser = client_logged_in(member)  # a session cookie too: liveness must not look it up
    with database_unreachable():
        response = browser.get(reverse("healthz"))
    assert_status(response, 200)
    assert response.json() == {"status": "ok"}


def test_paths_that_need_no_database_are_unaffected():
    with database_unreachable():
        response = APIClient().get("/api/v2/no-such-route")
        login_form = APIClient().get(reverse("ui:login"))
    assert_status(response, 404)
    assert_status(login_form, 200)


def test_one_warning_line_per_failed_request_and_no_secret(caplog, member, member_client, agent_client):
    """No traceback flood during an outage: one WARNING per request naming its request id, nothing at ERROR
    (Django's own "Service Unavailable" line included), and never the database password."""
    caplog.set_level(logging.INFO)
    browser_user = client_logged_in(member)
    responses = []
    with database_unreachable():
        for _label, client, method, url, body in _routes(member_client, agent_client):
            client.raise_request_exception = False
            responses.append(getattr(client, method)(url, body, format="json"))
        browser_user.raise_request_exception = False
        responses.append(browser_user.get(reverse("ui:home")))

    assert {response.status_code for response in responses} == {503}
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == len(responses), [record.getMessage() for record in warnings]
    for response, record in zip(responses, warnings, strict=True):
        assert response["X-Request-ID"] in record.getMessage()
        assert record.exc_info is None
        assert "OperationalError" in record.getMessage()
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR] == []
    assert SENTINEL_PASSWORD not in caplog.text
    assert "Traceback" not in caplog.text


class DatabaseBeforeTheViewMiddleware:
    """A middleware that reads the database before any view, as a session or user lookup may."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return self.get_response(request)


@pytest.mark.parametrize("path", ["/api/v2/users/me", "/workspaces/"])
def test_a_failure_outside_any_view_is_still_a_503_and_one_line(settings, caplog, path):
    """Errors raised by a middleware never reach a view's handler: Django's handler500 maps them, and its
    traceback is not logged."""
    settings.DEBUG = False
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE[: settings.MIDDLEWARE.index("core.http.middleware.ApiErrorMiddleware") + 1],
        f"{__name__}.DatabaseBeforeTheViewMiddleware",
        *settings.MIDDLEWARE[settings.MIDDLEWARE.index("core.http.middleware.ApiErrorMiddleware") + 1 :],
    ]
    client = APIClient()
    client.raise_request_exception = False
    with database_unreachable():
        response = client.get(path)
    if path.startswith("/api/"):
        assert_json_503(response)
    else:
        assert_page_503(response)
    assert [record.levelname for record in caplog.records if record.name != "django.db.backends"] == ["WARNING"]
    assert "Traceback" not in caplog.text


def test_a_connection_the_server_dropped_is_replaced_without_an_error(member_client):
    """CONN_HEALTH_CHECKS: a persistent connection the server has since closed (a restart, a failover) is
    checked at the start of the next request and replaced, so that request succeeds."""
    assert_status(member_client.get(reverse("agents:user-me")), 200)
    backend_pid = connection.connection.info.backend_pid
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [backend_pid])

    close_old_connections()  # what Django's request_started does at the start of every real request
    assert_status(member_client.get(reverse("agents:user-me")), 200)
    assert connection.connection.info.backend_pid != backend_pid


def test_a_server_that_never_answers_is_a_503_after_the_connect_timeout(member_client):
    """A partition drops packets instead of refusing them: without a connect timeout the request would hold its
    worker until gunicorn killed it (a 502 at the proxy). DATABASE_CONNECT_TIMEOUT turns the wait into a 503."""
    member_client.raise_request_exception = False
    with database_unreachable(silent=True, connect_timeout=2):
        started = time.monotonic()
        response = member_client.get(reverse("agents:user-me"))
        waited = time.monotonic() - started
    assert_json_503(response)
    assert 1.5 < waited < 6, waited


def test_the_connect_timeout_has_a_default(settings):
    assert settings.DATABASES["default"]["OPTIONS"]["connect_timeout"] > 0


@contextmanager
def session_setting(name: str, value: str):
    """A setting of the app's database session for the duration (the tests here commit: no transaction undoes it)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SET {name} = %s", [value])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"RESET {name}")


def test_a_lock_timeout_is_a_503_not_a_500(member_client):
    """The transient errors (a lock or statement timeout, a deadlock, a serialization failure) are worth a retry."""
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    member_client.raise_request_exception = False
    with psycopg.connect(**params) as other, session_setting("lock_timeout", "100ms"):
        # However the request ends, the lock holder lets go within seconds: nothing here can wait forever.
        other.execute("SET idle_in_transaction_session_timeout = '5s'")
        other.execute("LOCK TABLE policies_permissionmode IN ACCESS EXCLUSIVE MODE NOWAIT")
        response = member_client.get(reverse("policies:permission-mode-list"))
    assert_json_503(response)


def test_a_write_on_a_read_only_server_is_a_503_not_a_500(member_client):
    """After a failover the old primary may be a read-only standby: writes fail with SQLSTATE 25006 there."""
    member_client.raise_request_exception = False
    with session_setting("default_transaction_read_only", "on"):
        response = member_client.post(reverse("agents:workspace-list"), {"name": "on-a-standby"}, format="json")
    assert_json_503(response)
