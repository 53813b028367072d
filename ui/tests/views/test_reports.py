"""The reports page's "Unused for (days)" window: used by the report, its downloads and Apply; checked like the API."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from agents.models import AccessRequest, WorkspaceAgent
from tests.helpers.audit import user_data_read
from tests.helpers.responses import check_status
from ui.forms import UNUSED_DAYS_DEFAULT, UNUSED_DAYS_ERROR

pytestmark = pytest.mark.django_db


def _report_page(client, **params) -> str:
    response = client.get(reverse("ui:reports"), params)
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def test_window_changes_the_recommendation_and_the_downloads(auditor_web, agent):
    user_data_read(agent, days_ago=10)
    default = _report_page(auditor_web)
    assert "Switch to" not in default
    assert f'value="{UNUSED_DAYS_DEFAULT}"' in default
    assert f'href="/api/v2/reports/permissions?format=csv&amp;unused_days={UNUSED_DAYS_DEFAULT}"' in default

    narrow = _report_page(auditor_web, unused_days="5")
    assert "Switch to" in narrow and "have not in the last 5 days" in narrow
    assert 'id="unused-days" name="unused_days" value="5"' in narrow
    assert 'href="/api/v2/reports/permissions?format=csv&amp;unused_days=5"' in narrow
    # The JSON report is a paged API answer, not a file: the page offers the whole CSV only.
    assert "format=json" not in narrow


def test_download_link_gives_the_same_recommendation_as_the_page(auditor_web, agent):
    user_data_read(agent, days_ago=10)
    body = _report_page(auditor_web, unused_days="5")
    link = body.split('href="/api/v2/reports/permissions?format=csv&amp;')[1].split('"')[0].replace("&amp;", "&")
    csv_rows = list(
        csv.DictReader(
            io.StringIO(check_status(auditor_web.get(f"/api/v2/reports/permissions?format=csv&{link}"), 200).decode())
        )
    )
    assert [row["recommendation"] for row in csv_rows if row["agent_id"] == str(agent.pk)] == ["no-user-data"]


def test_empty_window_is_the_default(auditor_web, agent):
    body = _report_page(auditor_web, unused_days="")
    assert UNUSED_DAYS_ERROR not in body
    assert f"unused_days={UNUSED_DAYS_DEFAULT}" in body


@pytest.mark.parametrize("value", ["0", "-3", "3651", "abc", "1.5", "9" * 30])
def test_bad_window_is_a_form_error_not_a_500(auditor_web, agent, value):
    body = _report_page(auditor_web, unused_days=value)
    assert UNUSED_DAYS_ERROR in body
    assert f"The report below uses the default, {UNUSED_DAYS_DEFAULT} days." in body
    assert 'aria-invalid="true"' in body
    assert f'value="{value}"' in body, "the refused value stays in the field to be corrected"
    assert f"unused_days={UNUSED_DAYS_DEFAULT}" in body
    assert agent.name in body


@pytest.mark.parametrize("value", ["0", "1", "30", "3650", "3651", "-1", "abc", "7.0", ""])
def test_page_accepts_exactly_what_the_api_accepts(auditor_web, auditor_client, value):
    """The page and GET /api/v2/reports/permissions share one rule for unused_days."""
    api_refuses = auditor_client.get(reverse("agents:report-permissions"), {"unused_days": value}).status_code == 400
    page_refuses = UNUSED_DAYS_ERROR in _report_page(auditor_web, unused_days=value)
    assert page_refuses == api_refuses


def test_apply_returns_to_the_same_window(admin_web, agent):
    user_data_read(agent, days_ago=10)
    assert "Apply no-user-data" in _report_page(admin_web, unused_days="5")
    response = admin_web.post(
        reverse("ui:report-apply"),
        {"agent_id": str(agent.pk), "permission_mode": "no-user-data", "reason": "least privilege", "unused_days": "5"},
    )
    assert response["Location"] == reverse("ui:reports") + "?unused_days=5"
    assert WorkspaceAgent.objects.get(pk=agent.pk).permission_mode_id == "no-user-data"


def test_the_page_shows_each_agents_elevations_in_the_window(auditor_web, agent):
    now = timezone.now()
    AccessRequest.objects.create(
        agent=agent,
        workspace=agent.workspace,
        scopes=["agent:gitsshkey"],
        reason="needs it",
        duration_seconds=600,
        state=AccessRequest.APPROVED,
        requested_at=now - timedelta(days=10, minutes=1),
        decided_at=now - timedelta(days=10),
        expires_at=now - timedelta(days=10) + timedelta(minutes=10),
    )
    assert "1: <code>agent:gitsshkey</code>" in _report_page(auditor_web)
    assert "1: <code>agent:gitsshkey</code>" not in _report_page(auditor_web, unused_days="5")
