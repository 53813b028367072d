"""Agent routes' behaviour beyond the matrix: external-auth lookup rules, status reports, audit of reads."""

from __future__ import annotations

import pytest
from django.urls import reverse

from agents.models import AgentLog, AppStatus, ExternalAuthProvider
from agents.services.user_data import external_auth_link_set
from audit.models import AuditEvent
from tests.helpers.factories import UserFactory
from tests.helpers.responses import assert_status

pytestmark = pytest.mark.django_db

EXTERNAL_AUTH = "agents:agent-external-auth"
GITAUTH = "agents:agent-gitauth"


@pytest.fixture
def providers(member):
    """Two providers both matching github.com URLs; the owner has linked both, plus an unlinked one."""
    github = ExternalAuthProvider.objects.create(id="github", type="github", regex=r"^https://github\.com/")
    enterprise = ExternalAuthProvider.objects.create(id="a-github-mirror", type="github", regex=r"github\.com")
    ExternalAuthProvider.objects.create(id="gitlab", type="gitlab", regex=r"^https://gitlab\.com/")
    external_auth_link_set(user=member, provider=github, access_token="gho_github", token_extra={})
    external_auth_link_set(user=member, provider=enterprise, access_token="gho_mirror", token_extra={"x": 1})
    return github, enterprise


def test_external_auth_by_id(agent_client, providers):
    response = agent_client.get(reverse(EXTERNAL_AUTH) + "?id=github")
    assert_status(response, 200)
    assert response.data == {"access_token": "gho_github", "token_extra": {}, "type": "github"}


def test_external_auth_by_match_takes_the_first_linked_provider_by_id(agent_client, providers):
    response = agent_client.get(reverse(EXTERNAL_AUTH) + "?match=https://github.com/acme/app.git")
    assert_status(response, 200)
    assert response.data["access_token"] == "gho_mirror"  # 'a-github-mirror' sorts before 'github'


def test_gitauth_matches_by_url(agent_client, providers):
    response = agent_client.get(reverse(GITAUTH) + "?url=https://github.com/acme/app.git")
    assert_status(response, 200)
    assert response.data["access_token"] == "gho_mirror"


@pytest.mark.parametrize(
    "query",
    ["?id=gitlab", "?id=nope", "?match=https://gitlab.com/acme/app.git", "?match=https://example.com/x"],
)
def test_unlinked_or_unknown_provider_is_a_404(agent_client, providers, query):
    assert_status(agent_client.get(reverse(EXTERNAL_AUTH) + query), 404)
    assert not AuditEvent.objects.filter(action="agent.user_data_accessed").exists()


def test_another_users_link_is_not_the_owners(agent_client):
    provider = ExternalAuthProvider.objects.create(id="github", type="github", regex="github")
    external_auth_link_set(user=UserFactory(), provider=provider, access_token="gho_someone_else", token_extra={})
    assert_status(agent_client.get(reverse(EXTERNAL_AUTH) + "?id=github"), 404)


@pytest.mark.parametrize("query", ["", "?id=github&match=https://github.com/x", "?id=", "?match="])
def test_external_auth_needs_exactly_one_of_id_and_match(agent_client, providers, query):
    assert_status(agent_client.get(reverse(EXTERNAL_AUTH) + query), 400)


def test_gitauth_needs_a_url(agent_client, providers):
    response = agent_client.get(reverse(GITAUTH))
    assert_status(response, 400)
    assert "url" in response.json()


def test_every_user_data_read_is_audited_without_the_secret(agent_client, agent, providers):
    """docs/audit.md: every access to user data by an agent is recorded (route, token, mode) — never the secret."""
    assert_status(agent_client.get(reverse("agents:agent-gitsshkey")), 200)
    assert_status(agent_client.get(reverse(EXTERNAL_AUTH) + "?id=github"), 200)
    assert_status(agent_client.get(reverse(GITAUTH) + "?url=https://github.com/a/b"), 200)

    events = list(AuditEvent.objects.filter(action="agent.user_data_accessed").order_by("id"))
    assert [event.details["route"] for event in events] == ["gitsshkey", "external-auth", "gitauth"]
    for event in events:
        assert (event.actor_type, event.actor, event.agent_id) == ("agent", str(agent.pk), agent.pk)
        assert event.details["mode"] == "default"
        assert event.request_id
        assert "gho_" not in str(event.details) and "PRIVATE KEY" not in str(event.details)


def test_denied_request_is_audited_with_route_scope_and_mode(agent_client, agent, workspace):
    workspace.permission_mode_id = "no-user-data"
    workspace.save()
    assert_status(agent_client.get(reverse("agents:agent-gitsshkey")), 403)
    event = AuditEvent.objects.get(action="agent.access_denied")
    assert event.details["route"] == reverse("agents:agent-gitsshkey")
    assert event.details["scope"] == "agent:gitsshkey"
    assert event.details["mode"] == "no-user-data"
    assert event.agent_id == agent.pk


def test_app_status_is_stored_and_shown_latest_first(agent_client, member_client, agent):
    url = reverse("agents:agent-app-status")
    first = {"app_slug": "claude", "state": "working", "message": "Reading the code"}
    second = {"app_slug": "claude", "state": "complete", "message": "Done", "uri": "https://example.com/pr/1"}
    response = agent_client.patch(url, first, format="json")
    assert_status(response, 200)
    assert response.data["state"] == "working"
    assert_status(agent_client.patch(url, second, format="json"), 200)

    detail = member_client.get(reverse("agents:agent-detail", args=[agent.pk]))
    assert_status(detail, 200)
    assert [status["message"] for status in detail.data["app_statuses"]] == ["Done", "Reading the code"]
    assert detail.data["app_statuses"][0]["uri"] == "https://example.com/pr/1"
    assert AppStatus.objects.filter(agent=agent).count() == 2


@pytest.mark.parametrize(
    "body",
    [
        {"app_slug": "claude", "state": "sleeping", "message": "x"},
        {"app_slug": "claude", "state": "idle", "message": "x" * 161},
        {"app_slug": "Bad Slug", "state": "idle", "message": "x"},
        {"app_slug": "claude", "state": "idle", "message": "x", "uri": "javascript:alert(1)"},
        {"state": "idle", "message": "x"},
    ],
)
def test_bad_app_status_is_a_400(agent_client, body):
    assert_status(agent_client.patch(reverse("agents:agent-app-status"), body, format="json"), 400)
    assert not AppStatus.objects.exists()


def test_logs_are_appended(agent_client, agent):
    lines = [
        {"created_at": "2026-01-01T00:00:00Z", "level": "info", "output": "starting"},
        {"created_at": "2026-01-01T00:00:01Z", "level": "error", "output": "  indented\n"},
    ]
    response = agent_client.patch(reverse("agents:agent-logs"), {"logs": lines}, format="json")
    assert_status(response, 200)
    assert response.data == {"accepted": 2}
    assert list(AgentLog.objects.filter(agent=agent).values_list("output", flat=True)) == ["starting", "  indented\n"]


@pytest.mark.parametrize(
    "body",
    [
        {"logs": []},
        {"logs": [{"created_at": "2026-01-01T00:00:00Z", "level": "loud", "output": "x"}]},
        {"logs": [{"level": "info", "output": "x"}]},
        {"logs": "not a list"},
        {},
    ],
)
def test_bad_logs_are_a_400(agent_client, body):
    assert_status(agent_client.patch(reverse("agents:agent-logs"), body, format="json"), 400)
    assert not AgentLog.objects.exists()
