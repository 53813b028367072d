"""GET /api/v2/audit: who may read it, the filters, keyset pagination and bad input."""

from __future__ import annotations

import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.models import AuditEvent
from tests.helpers.audit import EVENT_FIELDS, T0, ids, make_event
from tests.helpers.responses import assert_status, check_status

pytestmark = pytest.mark.django_db

ROUTES = ["audit:audit-list", "audit:audit-export", "audit:audit-export-manifest", "agents:report-permissions"]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    ("principal", "expected"),
    [
        ("admin_client", 200),
        ("auditor_client", 200),
        ("member_client", 403),
        ("api_client", 401),
        ("agent_client", 401),
    ],
)
def test_only_admins_and_auditors_read_the_audit_routes(request, route, principal, expected):
    """Members are refused with 403; no credentials or an agent token is a 401 with a Bearer challenge."""
    client = request.getfixturevalue(principal)
    response = client.get(reverse(route))
    check_status(response, expected)
    if expected != 200:
        assert response["Content-Type"].startswith("application/json")
        assert "detail" in response.json()
    if expected == 401:
        assert response["WWW-Authenticate"].startswith("Bearer")


def test_detail_route_roles_and_404(auditor_client, member_client):
    event = make_event()
    response = auditor_client.get(reverse("audit:audit-detail", args=[event.id]))
    assert_status(response, 200)
    assert response.json()["id"] == event.id
    assert_status(member_client.get(reverse("audit:audit-detail", args=[event.id])), 403)
    response = auditor_client.get(reverse("audit:audit-detail", args=[event.id + 10_000]))
    assert_status(response, 404)
    assert response.json() == {"detail": "No such audit event."}


def test_rows_carry_exactly_the_design_fields(auditor_client, workspace, agent):
    make_event("agent.mode_changed", workspace_id=workspace.id, agent_id=agent.id, details={"reason": "why"})
    response = auditor_client.get(reverse("audit:audit-list"), {"action": "agent.mode_changed"})
    assert_status(response, 200)
    (row,) = response.json()["results"]
    assert list(row) == EVENT_FIELDS
    assert row["workspace_id"] == str(workspace.id)
    assert row["agent_id"] == str(agent.id)
    assert row["details"] == {"reason": "why"}
    assert len(row["hash"]) == 64
    assert response.json()["next"] is None


def test_newest_first(auditor_client):
    events = [make_event("permission_mode.deleted") for _ in range(3)]
    response = auditor_client.get(reverse("audit:audit-list"), {"action": "permission_mode.deleted"})
    assert ids(response) == [event.id for event in reversed(events)]


class TestFilters:
    @pytest.fixture
    def log(self, workspace, agent, other_member):
        other_agent_id = uuid.uuid4()
        return {
            "login": make_event("user.login", actor="alice", at=T0),
            "issued": make_event(
                "agent_token.issued", actor="alice", workspace_id=workspace.id, agent_id=agent.id, at=T0 + timedelta(1)
            ),
            "read": make_event(
                "agent.user_data_accessed",
                actor_type="agent",
                actor=str(agent.id),
                workspace_id=workspace.id,
                agent_id=agent.id,
                at=T0 + timedelta(2),
            ),
            "denied": make_event(
                "agent.access_denied",
                actor_type="agent",
                actor=str(other_agent_id),
                agent_id=other_agent_id,
                at=T0 + timedelta(3),
            ),
            "bob": make_event("user.login", actor="bob", at=T0 + timedelta(4)),
        }

    def query(self, client, **params) -> set[int]:
        # Only the log's own days, so events written by fixtures (token issues) never count.
        params.setdefault("since", T0.isoformat())
        params.setdefault("until", (T0 + timedelta(10)).isoformat())
        response = client.get(reverse("audit:audit-list"), params)
        assert_status(response, 200)
        return set(ids(response))

    def expect(self, log, *names) -> set[int]:
        return {log[name].id for name in names}

    def test_no_filter_but_the_time_range(self, auditor_client, log):
        assert self.query(auditor_client) == self.expect(log, "login", "issued", "read", "denied", "bob")

    def test_action_single_and_repeated(self, auditor_client, log):
        assert self.query(auditor_client, action="user.login") == self.expect(log, "login", "bob")
        assert self.query(auditor_client, action=["user.login", "agent.access_denied"]) == self.expect(
            log, "login", "bob", "denied"
        )
        assert self.query(auditor_client, action="agent_token.issued,agent.access_denied") == self.expect(
            log, "issued", "denied"
        )

    def test_actor_by_username_and_by_agent_id(self, auditor_client, log, agent):
        assert self.query(auditor_client, actor="alice") == self.expect(log, "login", "issued")
        assert self.query(auditor_client, actor=str(agent.id).upper()) == self.expect(log, "read")

    def test_workspace_and_agent(self, auditor_client, log, workspace, agent):
        assert self.query(auditor_client, workspace=str(workspace.id)) == self.expect(log, "issued", "read")
        assert self.query(auditor_client, agent=str(agent.id)) == self.expect(log, "issued", "read")

    def test_since_inclusive_until_exclusive(self, auditor_client, log):
        since, until = T0 + timedelta(1), T0 + timedelta(3)
        assert self.query(auditor_client, since=since.isoformat(), until=until.isoformat()) == self.expect(
            log, "issued", "read"
        )

    def test_combined(self, auditor_client, log, agent):
        assert self.query(auditor_client, action="agent.user_data_accessed", agent=str(agent.id)) == self.expect(
            log, "read"
        )
        assert self.query(auditor_client, action="user.login", actor="alice", since=T0.isoformat()) == self.expect(
            log, "login"
        )
        assert self.query(auditor_client, action="user.login", actor="nobody") == set()

    def test_empty_parameters_mean_no_filter(self, auditor_client, log):
        """A web form submits empty fields; they must not narrow the result or fail."""
        assert self.query(auditor_client, actor="", workspace="", agent="", action="") == self.expect(
            log, "login", "issued", "read", "denied", "bob"
        )


class TestPagination:
    def walk(self, client, url, params=None) -> tuple[list[int], int]:
        seen, pages = [], 0
        response = client.get(url, params or {})
        while True:
            assert_status(response, 200)
            seen.extend(ids(response))
            pages += 1
            next_url = response.json()["next"]
            if next_url is None:
                return seen, pages
            response = client.get(next_url)

    def test_pages_cover_every_row_once_in_order(self, auditor_client):
        events = [make_event("permission_mode.created") for _ in range(23)]
        seen, pages = self.walk(
            auditor_client, reverse("audit:audit-list"), {"action": "permission_mode.created", "page_size": 5}
        )
        assert seen == [event.id for event in reversed(events)]
        assert pages == 5

    def test_exact_multiple_has_no_empty_last_page(self, auditor_client):
        for _ in range(6):
            make_event("permission_mode.created")
        seen, pages = self.walk(
            auditor_client, reverse("audit:audit-list"), {"action": "permission_mode.created", "page_size": 3}
        )
        assert len(seen) == 6
        assert pages == 2

    def test_cursor_survives_new_inserts(self, auditor_client):
        """Rows appended while an auditor pages through must not shift pages into duplicates or gaps."""
        events = [make_event("permission_mode.created") for _ in range(10)]
        response = auditor_client.get(
            reverse("audit:audit-list"), {"action": "permission_mode.created", "page_size": 4}
        )
        first_page = ids(response)
        for _ in range(5):
            make_event("permission_mode.created")
        rest, _ = self.walk(auditor_client, response.json()["next"])
        assert first_page + rest == [event.id for event in reversed(events)]

    def test_next_is_a_full_url_keeping_the_filters(self, auditor_client):
        for _ in range(3):
            make_event("permission_mode.created", actor="carol")
        response = auditor_client.get(
            reverse("audit:audit-list"), {"action": "permission_mode.created", "actor": "carol", "page_size": 2}
        )
        next_url = urlsplit(response.json()["next"])
        assert next_url.scheme == "http"
        assert next_url.netloc == "testserver"
        assert next_url.path == reverse("audit:audit-list")
        query = parse_qs(next_url.query)
        assert query["action"] == ["permission_mode.created"]
        assert query["actor"] == ["carol"]
        assert query["page_size"] == ["2"]
        assert query["cursor"]

    def test_default_page_size_is_50(self, auditor_client):
        for _ in range(51):
            make_event("permission_mode.created")
        response = auditor_client.get(reverse("audit:audit-list"), {"action": "permission_mode.created"})
        assert len(ids(response)) == 50
        assert response.json()["next"] is not None

    def test_page_uses_keyset_not_offset(self, auditor_client):
        """Deep pages must stay as cheap as the first: the query filters on id, never OFFSET."""
        for _ in range(5):
            make_event("permission_mode.created")
        first = auditor_client.get(reverse("audit:audit-list"), {"action": "permission_mode.created", "page_size": 2})
        with CaptureQueriesContext(connection) as queries:
            assert_status(auditor_client.get(first.json()["next"]), 200)
        page_sql = [query["sql"] for query in queries if "audit_auditevent" in query["sql"]]
        assert len(page_sql) == 1
        assert "OFFSET" not in page_sql[0].upper()
        assert '"audit_auditevent"."id" <' in page_sql[0]

    def test_query_count_is_fixed(self, auditor_client, django_assert_max_num_queries):
        for _ in range(30):
            make_event("permission_mode.created")
        with django_assert_max_num_queries(4):
            assert_status(auditor_client.get(reverse("audit:audit-list"), {"page_size": 1000}), 200)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-45"}, "until"),
        ({"since": "2026-11-02T00:00:00Z", "until": "2026-11-01T00:00:00Z"}, "until"),
        ({"workspace": "not-a-uuid"}, "workspace"),
        ({"agent": "42"}, "agent"),
        ({"action": "DROP TABLE audit"}, "action"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "1001"}, "page_size"),
        ({"page_size": "many"}, "page_size"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "djE6LTE"}, "cursor"),  # base64 of "v1:-1"
    ],
)
def test_bad_input_is_a_400_naming_the_field(auditor_client, params, field):
    response = auditor_client.get(reverse("audit:audit-list"), params)
    assert_status(response, 400)
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert "detail" in body
    assert field in body, body


def test_audit_reads_are_not_audit_events(auditor_client):
    """Reading the log writes nothing: docs/audit.md lists no read event, and a read must never fail on a write."""
    make_event()
    before = AuditEvent.objects.count()
    assert_status(auditor_client.get(reverse("audit:audit-list")), 200)
    assert AuditEvent.objects.count() == before
