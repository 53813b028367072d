"""PATCH …/me/logs and …/me/app-status under the per-agent report quotas: 429 with Retry-After and nothing
stored past a budget, 400 for an oversized log line, and the token that reported each status."""

from __future__ import annotations

import pytest
from django.urls import reverse

from agents.models import AgentLog, AgentReportWindow, AppStatus
from agents.services.tokens import agent_token_issue
from tests.helpers.clients import client_for_agent_token
from tests.helpers.factories import AgentFactory, WorkspaceFactory
from tests.helpers.responses import assert_status

pytestmark = pytest.mark.django_db

LOGS = "agents:agent-logs"
APP_STATUS = "agents:agent-app-status"


def _logs(*outputs: str) -> dict:
    return {"logs": [{"created_at": "2026-01-01T00:00:00Z", "level": "info", "output": output} for output in outputs]}


def _status(message: str = "working on it") -> dict:
    return {"app_slug": "claude", "state": "working", "message": message}


@pytest.fixture
def other_agent_client(member):
    other = AgentFactory(workspace=WorkspaceFactory(owner=member))
    return other, client_for_agent_token(agent_token_issue(actor=member, agent=other, name="other").plaintext)


def test_past_the_log_quota_the_answer_is_a_429_with_retry_after_and_nothing_is_stored(agent_client, agent, settings):
    settings.CODERAUTH_AGENT_LOG_LINES_PER_MINUTE = 3
    assert_status(agent_client.patch(reverse(LOGS), _logs("a", "b"), format="json"), 200)

    response = agent_client.patch(reverse(LOGS), _logs("c", "d"), format="json")

    assert_status(response, 429)
    body = response.json()
    assert body["code"] == "log_lines_per_minute"
    assert body["limit"] == 3
    assert "3 log lines a minute" in body["detail"]
    assert 1 <= int(response["Retry-After"]) <= 60
    assert list(AgentLog.objects.filter(agent=agent).values_list("output", flat=True)) == ["a", "b"]
    assert AgentReportWindow.objects.get(agent=agent, kind="logs").rows == 2


def test_one_agent_spending_its_budget_leaves_another_agents_budget_whole(
    agent_client, agent, other_agent_client, settings
):
    settings.CODERAUTH_AGENT_LOG_BYTES_PER_MINUTE = 10
    other, other_client = other_agent_client
    assert_status(agent_client.patch(reverse(LOGS), _logs("x" * 10), format="json"), 200)
    assert_status(agent_client.patch(reverse(LOGS), _logs("y"), format="json"), 429)

    assert_status(other_client.patch(reverse(LOGS), _logs("z" * 10), format="json"), 200)
    assert AgentLog.objects.filter(agent=other).count() == 1


def test_tokens_of_one_agent_share_its_budget(agent_client, agent, member, settings):
    """Minting more tokens does not buy more quota: the budget is the agent's."""
    settings.CODERAUTH_AGENT_LOG_LINES_PER_MINUTE = 2
    second = client_for_agent_token(agent_token_issue(actor=member, agent=agent, name="second").plaintext)
    assert_status(agent_client.patch(reverse(LOGS), _logs("a", "b"), format="json"), 200)

    assert_status(second.patch(reverse(LOGS), _logs("c"), format="json"), 429)


def test_a_batch_over_a_whole_minutes_budget_is_a_429_asking_for_smaller_parts(agent_client, settings):
    settings.CODERAUTH_AGENT_LOG_BYTES_PER_MINUTE = 4

    response = agent_client.patch(reverse(LOGS), _logs("abc", "de"), format="json")

    assert_status(response, 429)
    assert response["Retry-After"] == "60"
    assert response.json()["code"] == "log_bytes_per_minute"
    assert "smaller parts" in response.json()["detail"]
    assert not AgentLog.objects.exists()


def test_a_log_line_over_the_byte_limit_is_a_400_naming_the_line(agent_client, settings):
    settings.CODERAUTH_AGENT_LOG_LINE_MAX_BYTES = 8

    response = agent_client.patch(reverse(LOGS), _logs("fine", "ünïcödé"), format="json")

    assert_status(response, 400)
    assert "Log line 1 has 11 bytes" in response.json()["detail"]
    assert "logs" in response.json()
    assert not AgentLog.objects.exists()


def test_a_log_line_of_exactly_the_byte_limit_is_accepted(agent_client, settings):
    settings.CODERAUTH_AGENT_LOG_LINE_MAX_BYTES = 8

    assert_status(agent_client.patch(reverse(LOGS), _logs("ü" * 4), format="json"), 200)


def test_a_log_line_of_the_default_limit_plus_one_byte_is_refused(agent_client):
    """The default per-line limit is 16 KiB of UTF-8, whatever the character count."""
    assert_status(agent_client.patch(reverse(LOGS), _logs("x" * 16 * 1024), format="json"), 200)
    assert_status(agent_client.patch(reverse(LOGS), _logs("x" * (16 * 1024 + 1)), format="json"), 400)


def test_past_the_app_status_quota_the_answer_is_a_429_and_nothing_is_stored(agent_client, agent, settings):
    settings.CODERAUTH_APP_STATUSES_PER_MINUTE = 1
    assert_status(agent_client.patch(reverse(APP_STATUS), _status("first"), format="json"), 200)

    response = agent_client.patch(reverse(APP_STATUS), _status("second"), format="json")

    assert_status(response, 429)
    assert response.json()["code"] == "app_statuses_per_minute"
    assert response.has_header("Retry-After")
    assert list(AppStatus.objects.values_list("message", flat=True)) == ["first"]


def test_app_status_bytes_past_the_quota_are_a_429(agent_client, settings):
    settings.CODERAUTH_APP_STATUS_BYTES_PER_MINUTE = 10
    assert_status(agent_client.patch(reverse(APP_STATUS), _status("x" * 10), format="json"), 200)

    response = agent_client.patch(reverse(APP_STATUS), _status("y"), format="json")

    assert_status(response, 429)
    assert response.json() | {"detail": ""} == {"detail": "", "limit": 10, "code": "app_status_bytes_per_minute"}


def test_an_app_status_names_the_token_that_reported_it(agent, member):
    """A status sent with a stolen token can be traced to that token, in the answer and in the database."""
    issued = agent_token_issue(actor=member, agent=agent, name="reporter")
    response = client_for_agent_token(issued.plaintext).patch(reverse(APP_STATUS), _status(), format="json")

    assert_status(response, 200)
    assert response.json()["token_id"] == str(issued.token.pk)
    assert AppStatus.objects.get().token_id == issued.token.pk


def test_a_log_append_costs_five_queries(agent_client, django_assert_num_queries):
    """The token lookup, then one transaction: the quota upsert and one multi-row insert (the savepoint pair
    is the test's own transaction; in production they are BEGIN and COMMIT)."""
    assert_status(agent_client.patch(reverse(LOGS), _logs("warm-up"), format="json"), 200)

    with django_assert_num_queries(5):
        response = agent_client.patch(reverse(LOGS), _logs(*(f"line {n}" for n in range(50))), format="json")

    assert_status(response, 200)
    assert response.json() == {"accepted": 50}
