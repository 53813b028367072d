"""GET /healthz (liveness, no database) and GET /readyz (the database answers and the audit log can be written),
both public and cheap (docs/operations.md#health-checks-and-database-outages)."""

from __future__ import annotations

import logging
import uuid

import pytest
from django.db import connection
from django.urls import reverse
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from audit.health import GUARD_TRIGGERS
from audit.models import AuditEvent
from core.http.errors import RETRY_AFTER_SECONDS
from core.http.health import NOT_READY_DETAIL
from tests.helpers.clients import client_logged_in
from tests.helpers.responses import assert_status

AUDIT_TABLE = AuditEvent._meta.db_table


def _sql(statement: str, params=None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


@pytest.mark.django_db
def test_liveness_answers_without_touching_the_database(member, django_assert_num_queries):
    """Liveness must not depend on PostgreSQL, or an outage gets every healthy process restarted. A session
    cookie changes nothing: the endpoint looks up no credential."""
    browser = client_logged_in(member)
    with django_assert_num_queries(0):
        anonymous = APIClient().get(reverse("healthz"))
        signed_in = browser.get(reverse("healthz"))
        head = APIClient().head(reverse("healthz"))
    for response in (anonymous, signed_in):
        assert_status(response, 200)
        assert response.json() == {"status": "ok"}
    assert_status(head, 200)


@pytest.mark.django_db
def test_readiness_is_one_query_and_writes_nothing(django_assert_num_queries):
    events = AuditEvent.objects.count()
    with django_assert_num_queries(1):
        response = APIClient().get(reverse("readyz"))
    assert_status(response, 200)
    assert response.json() == {"status": "ready"}
    assert AuditEvent.objects.count() == events


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_health_endpoints_take_no_writes(method):
    for name in ("healthz", "readyz"):
        response = getattr(APIClient(), method)(reverse(name))
        assert_status(response, 405)
        assert response["Content-Type"] == "application/json"


@pytest.fixture
def role_without(db):
    """Run the rest of the test as a fresh role holding every privilege audit_record needs but one. The role
    and the SET ROLE live in the test's transaction and vanish with its rollback."""

    def become(missing: str) -> None:
        role = f"readiness_{uuid.uuid4().hex[:12]}"
        sequence = f"pg_get_serial_sequence('{AUDIT_TABLE}', 'id')"
        _sql(f"CREATE ROLE {role} NOLOGIN")
        for privilege in {"INSERT", "SELECT"} - {missing}:
            _sql(f"GRANT {privilege} ON {AUDIT_TABLE} TO {role}")
        if missing != "USAGE":
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT {sequence}")  # noqa: S608 - fixed names
                _sql(f"GRANT USAGE ON SEQUENCE {cursor.fetchone()[0]} TO {role}")
        _sql(f"SET LOCAL ROLE {role}")

    return become


@pytest.mark.parametrize(
    ("missing", "logged"),
    [
        ("INSERT", f"no INSERT privilege on {AUDIT_TABLE}"),
        ("SELECT", f"no SELECT privilege on {AUDIT_TABLE}"),
        ("USAGE", f"no USAGE privilege on the id sequence of {AUDIT_TABLE}"),
    ],
)
def test_readiness_fails_when_the_audit_log_cannot_be_appended_to(role_without, caplog, missing, logged):
    """A process whose database user may not append to the audit log would fail every audited write: it must
    not get traffic. The load balancer sees 503; the log says why."""
    role_without(missing)
    response = APIClient().get(reverse("readyz"))
    assert_not_ready(response)
    assert logged in caplog.text


def test_readiness_ready_as_a_role_holding_exactly_what_appends_need(role_without):
    """The fixture's role with nothing taken away is ready: the checks above fail for the missing privilege."""
    role_without("nothing")
    assert_status(APIClient().get(reverse("readyz")), 200)


@pytest.mark.django_db
@pytest.mark.parametrize("trigger", GUARD_TRIGGERS)
def test_readiness_fails_when_an_append_only_guard_is_off(caplog, trigger):
    """Without its triggers the log could be rewritten in place: not ready (the change is rolled back after)."""
    _sql(f"ALTER TABLE {AUDIT_TABLE} DISABLE TRIGGER {trigger}")
    assert_not_ready(APIClient().get(reverse("readyz")))
    assert "2 of the 3 append-only triggers" in caplog.text


@pytest.mark.django_db
def test_readiness_fails_on_a_read_only_database(caplog):
    """A standby after a failover, or default_transaction_read_only: every write would fail."""
    _sql("SET TRANSACTION READ ONLY")
    assert_not_ready(APIClient().get(reverse("readyz")))
    assert "the database is read-only" in caplog.text


@pytest.mark.django_db
def test_readiness_fails_while_the_audit_table_is_missing(caplog):
    """Migrations not applied yet: the probe's own query fails; still a 503, not a 500."""
    _sql(f"ALTER TABLE {AUDIT_TABLE} RENAME TO audit_auditevent_elsewhere")
    client = APIClient()
    client.raise_request_exception = False
    assert_not_ready(client.get(reverse("readyz")))
    assert "the readiness query failed (ProgrammingError)" in caplog.text


def assert_not_ready(response) -> None:
    assert_status(response, 503)
    assert response["Content-Type"] == "application/json"
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert response.json() == {"detail": NOT_READY_DETAIL, "request_id": response["X-Request-ID"]}


@pytest.mark.django_db
def test_readiness_failures_log_one_warning_each(caplog):
    caplog.set_level(logging.INFO)
    _sql(f"ALTER TABLE {AUDIT_TABLE} DISABLE TRIGGER {GUARD_TRIGGERS[0]}")
    responses = [APIClient().get(reverse("readyz")) for _ in range(3)]
    lines = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert [record.levelname for record in lines] == ["WARNING"] * 3
    for response, record in zip(responses, lines, strict=True):
        assert response["X-Request-ID"] in record.getMessage()


def test_probes_are_not_redirected_to_https(settings, db):
    """Redirected, a probe would read the 301 as success (any 2xx or 3xx passes) and never see a 503."""
    settings.SECURE_SSL_REDIRECT = True
    client = APIClient()
    assert_status(client.get(reverse("healthz")), 200)
    assert_status(client.get(reverse("readyz")), 200)
    assert_status(client.get(reverse("agents:user-me")), 301)


# --- The schema ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def test_health_endpoints_are_in_the_schema_and_public(schema):
    healthz = schema["paths"]["/healthz"]["get"]
    readyz = schema["paths"]["/readyz"]["get"]
    for operation in (healthz, readyz):
        assert operation["security"] == [{}]
        assert "200" in operation["responses"]
    assert "503" not in healthz["responses"]
    assert "Retry-After" in readyz["responses"]["503"]["headers"]


def test_every_operation_that_uses_the_database_declares_503_with_retry_after(schema):
    missing = []
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if path == "/healthz" or method not in {"get", "post", "put", "patch", "delete"}:
                continue
            unavailable = operation["responses"].get("503", {})
            if "Retry-After" not in unavailable.get("headers", {}):
                missing.append(f"{method.upper()} {path}")
    assert not missing, missing
