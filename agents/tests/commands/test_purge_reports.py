"""manage.py purge_reports: log lines and app statuses past their retention go, in audited batches; each
agent's latest status per app always stays."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from agents.models import AgentLog, AppStatus
from audit.models import AuditEvent
from tests.helpers.factories import AgentFactory

pytestmark = pytest.mark.django_db


def _purge(*args: str) -> str:
    out = StringIO()
    call_command("purge_reports", *args, stdout=out)
    return out.getvalue()


def _log(agent, output: str, *, days_ago: float) -> AgentLog:
    line = AgentLog.objects.create(agent=agent, created_at=timezone.now(), level="info", output=output)
    AgentLog.objects.filter(pk=line.pk).update(received_at=timezone.now() - timedelta(days=days_ago))
    return line


def _status(agent, message: str, *, days_ago: float, app_slug: str = "claude") -> AppStatus:
    status = AppStatus.objects.create(agent=agent, app_slug=app_slug, state="working", message=message)
    AppStatus.objects.filter(pk=status.pk).update(created_at=timezone.now() - timedelta(days=days_ago))
    return status


@pytest.fixture
def reports(agent):
    """Default retention: logs 7 days, statuses 30 days."""
    _log(agent, "old-1", days_ago=10)
    _log(agent, "old-2", days_ago=9)
    _log(agent, "old-3", days_ago=8)
    _log(agent, "recent", days_ago=1)
    _status(agent, "claude-oldest", days_ago=50)
    _status(agent, "claude-old", days_ago=40)
    _status(agent, "claude-recent", days_ago=2)
    _status(agent, "cursor-only-and-old", days_ago=60, app_slug="cursor")
    _status(agent, "aider-old", days_ago=45, app_slug="aider")
    _status(agent, "aider-latest-but-old", days_ago=35, app_slug="aider")
    return agent


def test_reports_past_retention_go_and_recent_ones_stay(reports):
    output = _purge()

    assert list(AgentLog.objects.values_list("output", flat=True)) == ["recent"]
    assert set(AppStatus.objects.values_list("message", flat=True)) == {
        "claude-recent",
        "cursor-only-and-old",
        "aider-latest-but-old",
    }
    assert "log lines: 3 deleted." in output
    assert "app statuses: 3 deleted." in output


def test_the_latest_status_of_each_app_is_kept_however_old(agent):
    """The agent pages show each app's latest status: retention never removes it."""
    other = AgentFactory(workspace=agent.workspace)
    _status(agent, "agent-claude-old", days_ago=100)
    _status(agent, "agent-claude-latest", days_ago=90)
    _status(other, "other-claude-only", days_ago=100)

    _purge()

    assert set(AppStatus.objects.values_list("message", flat=True)) == {"agent-claude-latest", "other-claude-only"}


def test_of_two_statuses_stamped_alike_the_later_row_is_the_latest(agent):
    first = _status(agent, "first", days_ago=40)
    second = _status(agent, "second", days_ago=40)
    AppStatus.objects.filter(pk=second.pk).update(created_at=AppStatus.objects.get(pk=first.pk).created_at)

    _purge()

    assert list(AppStatus.objects.values_list("message", flat=True)) == ["second"]


def test_the_retention_periods_come_from_the_settings(reports, settings):
    settings.CODERAUTH_AGENT_LOG_RETENTION = timedelta(days=30)
    settings.CODERAUTH_APP_STATUS_RETENTION = timedelta(days=1)

    _purge()

    assert AgentLog.objects.count() == 4
    assert set(AppStatus.objects.values_list("message", flat=True)) == {
        "claude-recent",
        "cursor-only-and-old",
        "aider-latest-but-old",
    }


def test_each_batch_is_audited_with_its_count_and_cutoff_only(reports):
    output = _purge("--batch-size", "2")

    log_rows = AuditEvent.objects.filter(action="agent_log.purged").order_by("id")
    status_rows = AuditEvent.objects.filter(action="app_status.purged").order_by("id")
    assert [row.details["count"] for row in log_rows] == [2, 1]
    assert [row.details["count"] for row in status_rows] == [2, 1]
    assert all(set(row.details) == {"count", "received_before"} for row in log_rows)
    assert all(set(row.details) == {"count", "created_before"} for row in status_rows)
    assert all(row.actor_type == "system" and row.actor == "purge_reports" for row in [*log_rows, *status_rows])
    assert "log lines: 2 of about 3 deleted" in output
    assert "log lines: 3 of about 3 deleted" in output


def test_dry_run_counts_and_deletes_nothing(reports):
    output = _purge("--dry-run")

    assert "Log lines received before" in output
    assert ": 3; app statuses" in output
    assert output.rstrip().endswith("not their app's latest: 3\nDry run: nothing deleted.")
    assert AgentLog.objects.count() == 4
    assert AppStatus.objects.count() == 6
    assert not AuditEvent.objects.filter(action__in=["agent_log.purged", "app_status.purged"]).exists()


def test_running_again_changes_nothing(reports):
    _purge()
    events = AuditEvent.objects.count()

    output = _purge()

    assert "log lines: 0 deleted." in output
    assert "app statuses: 0 deleted." in output
    assert AuditEvent.objects.count() == events
    assert AgentLog.objects.count() == 1
    assert AppStatus.objects.count() == 3


@pytest.mark.parametrize("batch_size", ["0", "100001"])
def test_a_bad_batch_size_is_refused(batch_size):
    with pytest.raises(CommandError, match="--batch-size"):
        _purge("--batch-size", batch_size)


def test_a_zero_retention_is_refused(settings):
    settings.CODERAUTH_AGENT_LOG_RETENTION = timedelta(0)
    with pytest.raises(CommandError, match="retention"):
        _purge()
