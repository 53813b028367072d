"""Per-agent report quotas (agents/services/quotas.py) as the report services spend them: one-minute windows
counted by one upsert, refusals that store nothing and leave the counter where it was."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents.authentication import AgentTokenAuthentication
from agents.models import AgentLog, AgentReportWindow, AppStatus
from agents.services.quotas import report_quota_spend
from agents.services.status import agent_logs_append, app_status_report
from agents.services.tokens import agent_token_issue
from core.exceptions import InvalidInput, LimitReached
from tests.helpers.factories import AgentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def principal(agent, member):
    plaintext = agent_token_issue(actor=member, agent=agent, name="reporter").plaintext
    request = type("Request", (), {"headers": {"Authorization": f"Bearer {plaintext}"}})()
    return AgentTokenAuthentication().authenticate(request)[0]


def _lines(*outputs: str) -> list[dict]:
    return [{"created_at": timezone.now(), "level": "info", "output": output} for output in outputs]


def _window(agent, kind=AgentReportWindow.KIND_LOGS) -> AgentReportWindow:
    return AgentReportWindow.objects.get(agent=agent, kind=kind)


def test_reports_add_up_within_the_window(principal, agent):
    agent_logs_append(principal=principal, logs=_lines("ab", "é"))
    agent_logs_append(principal=principal, logs=_lines("xyz"))

    window = _window(agent)
    assert (window.rows, window.bytes) == (3, 2 + 2 + 3)
    assert (window.window_start.second, window.window_start.microsecond) == (0, 0)


def test_a_new_minute_resets_the_window(principal, agent, settings):
    settings.CODERAUTH_AGENT_LOG_LINES_PER_MINUTE = 3
    agent_logs_append(principal=principal, logs=_lines("a", "b", "c"))
    current_start = _window(agent).window_start
    AgentReportWindow.objects.filter(agent=agent).update(window_start=current_start - timedelta(minutes=1))

    agent_logs_append(principal=principal, logs=_lines("d", "e"))

    window = _window(agent)
    assert (window.rows, window.bytes, window.window_start) == (2, 2, current_start)
    assert AgentLog.objects.filter(agent=agent).count() == 5


def test_an_older_window_counts_in_the_newer_one_instead_of_resetting_it(agent):
    """A transaction that started before the minute turned must not wipe the newer window's total."""
    future = timezone.now().replace(second=0, microsecond=0) + timedelta(minutes=5)
    AgentReportWindow.objects.create(
        agent=agent, kind=AgentReportWindow.KIND_LOGS, window_start=future, rows=10, bytes=100
    )

    report_quota_spend(agent_id=agent.pk, kind=AgentReportWindow.KIND_LOGS, rows=1, size=5)

    window = _window(agent)
    assert (window.rows, window.bytes, window.window_start) == (11, 105, future)


def test_one_agent_cannot_store_more_log_lines_than_its_minute_budget(principal, agent, settings):
    settings.CODERAUTH_AGENT_LOG_LINES_PER_MINUTE = 5
    agent_logs_append(principal=principal, logs=_lines("1", "2", "3", "4"))

    with pytest.raises(LimitReached) as refused:
        agent_logs_append(principal=principal, logs=_lines("5", "6"))

    assert refused.value.extra == {"limit": 5, "code": "log_lines_per_minute"}
    assert "5 log lines a minute" in refused.value.detail
    assert 1 <= refused.value.retry_after <= 60
    assert AgentLog.objects.filter(agent=agent).count() == 4
    assert agent_logs_append(principal=principal, logs=_lines("5")) == 1


def test_one_agent_cannot_store_more_log_bytes_than_its_minute_budget(principal, agent, settings):
    """250 MB in 20 s with one token was possible: the bytes of `output` are now counted per agent and minute."""
    settings.CODERAUTH_AGENT_LOG_BYTES_PER_MINUTE = 10
    agent_logs_append(principal=principal, logs=_lines("x" * 8))

    with pytest.raises(LimitReached) as refused:
        agent_logs_append(principal=principal, logs=_lines("yyy"))

    assert refused.value.extra == {"limit": 10, "code": "log_bytes_per_minute"}
    assert AgentLog.objects.filter(agent=agent).count() == 1


def test_log_bytes_are_counted_in_utf8(principal, agent, settings):
    settings.CODERAUTH_AGENT_LOG_BYTES_PER_MINUTE = 5
    with pytest.raises(LimitReached):
        agent_logs_append(principal=principal, logs=_lines("ééé"))  # 3 characters, 6 bytes


def test_empty_log_lines_count_against_the_row_quota(principal, agent, settings):
    """366,000 empty lines in 20 s was the cheapest flood: an empty line costs a row like any other."""
    settings.CODERAUTH_AGENT_LOG_LINES_PER_MINUTE = 3
    agent_logs_append(principal=principal, logs=_lines("", "", ""))

    with pytest.raises(LimitReached) as refused:
        agent_logs_append(principal=principal, logs=_lines(""))

    assert refused.value.extra["code"] == "log_lines_per_minute"
    assert AgentLog.objects.filter(agent=agent).count() == 3


def test_a_refused_report_stores_nothing_and_leaves_the_counter_unchanged(principal, agent, settings):
    settings.CODERAUTH_AGENT_LOG_LINES_PER_MINUTE = 5
    agent_logs_append(principal=principal, logs=_lines("a", "b", "c"))
    before = _window(agent)

    with pytest.raises(LimitReached):
        agent_logs_append(principal=principal, logs=_lines("d", "e", "f"))

    after = _window(agent)
    assert (after.rows, after.bytes, after.window_start) == (before.rows, before.bytes, before.window_start)
    assert list(AgentLog.objects.filter(agent=agent).values_list("output", flat=True)) == ["a", "b", "c"]


def test_a_batch_bigger_than_a_whole_minute_is_refused_without_touching_the_window(principal, agent, settings):
    settings.CODERAUTH_AGENT_LOG_LINES_PER_MINUTE = 2

    with pytest.raises(LimitReached) as refused:
        agent_logs_append(principal=principal, logs=_lines("a", "b", "c"))

    assert refused.value.retry_after == 60
    assert "smaller parts" in refused.value.detail
    assert refused.value.extra == {"limit": 2, "code": "log_lines_per_minute"}
    assert not AgentReportWindow.objects.exists()
    assert not AgentLog.objects.exists()


def test_a_log_line_over_the_size_limit_is_invalid_input_naming_the_line(principal, agent, settings):
    settings.CODERAUTH_AGENT_LOG_LINE_MAX_BYTES = 4

    with pytest.raises(InvalidInput) as refused:
        agent_logs_append(principal=principal, logs=_lines("ok", "ééé"))

    assert "Log line 1 has 6 bytes" in refused.value.detail
    assert refused.value.field == "logs"
    assert not AgentReportWindow.objects.exists()
    assert not AgentLog.objects.exists()


def test_each_agent_has_its_own_budget(principal, agent, settings):
    settings.CODERAUTH_AGENT_LOG_LINES_PER_MINUTE = 2
    other = AgentFactory()
    agent_logs_append(principal=principal, logs=_lines("a", "b"))

    report_quota_spend(agent_id=other.pk, kind=AgentReportWindow.KIND_LOGS, rows=2, size=2)

    assert _window(other).rows == 2
    with pytest.raises(LimitReached):
        agent_logs_append(principal=principal, logs=_lines("c"))


def test_logs_and_app_statuses_have_separate_budgets(principal, agent, settings):
    settings.CODERAUTH_AGENT_LOG_LINES_PER_MINUTE = 1
    agent_logs_append(principal=principal, logs=_lines("a"))

    app_status_report(principal=principal, app_slug="claude", state="working", message="still here")

    assert _window(agent, AgentReportWindow.KIND_APP_STATUS).rows == 1


def test_app_statuses_per_minute_are_limited(principal, agent, settings):
    settings.CODERAUTH_APP_STATUSES_PER_MINUTE = 2
    for message in ("one", "two"):
        app_status_report(principal=principal, app_slug="claude", state="working", message=message)

    with pytest.raises(LimitReached) as refused:
        app_status_report(principal=principal, app_slug="claude", state="working", message="three")

    assert refused.value.extra == {"limit": 2, "code": "app_statuses_per_minute"}
    assert list(AppStatus.objects.values_list("message", flat=True)) == ["two", "one"]


def test_app_status_bytes_count_message_and_uri(principal, agent, settings):
    settings.CODERAUTH_APP_STATUS_BYTES_PER_MINUTE = 30
    uri = "https://example.com/pr/1"  # 24 bytes
    app_status_report(principal=principal, app_slug="claude", state="working", message="12345", uri=uri)
    assert _window(agent, AgentReportWindow.KIND_APP_STATUS).bytes == 29

    with pytest.raises(LimitReached) as refused:
        app_status_report(principal=principal, app_slug="claude", state="working", message="ab")

    assert refused.value.extra == {"limit": 30, "code": "app_status_bytes_per_minute"}
    assert AppStatus.objects.count() == 1


def test_an_app_status_records_the_token_that_reported_it(principal, agent):
    """A status sent with a stolen token can be traced to that token."""
    status = app_status_report(principal=principal, app_slug="claude", state="idle", message="done")

    assert AppStatus.objects.get(pk=status.pk).token_id == principal.token_id


def test_the_quota_is_one_upsert_statement(agent):
    """Concurrent reports of one agent are safe by construction: the read-and-add is a single
    INSERT … ON CONFLICT DO UPDATE, serialised by the window row's lock, with no separate read to race."""
    with CaptureQueriesContext(connection) as queries:
        report_quota_spend(agent_id=agent.pk, kind=AgentReportWindow.KIND_LOGS, rows=1, size=1)
        report_quota_spend(agent_id=agent.pk, kind=AgentReportWindow.KIND_LOGS, rows=1, size=1)

    assert len(queries) == 2
    assert all("ON CONFLICT (agent_id, kind) DO UPDATE" in query["sql"] for query in queries)
    assert _window(agent).rows == 2
