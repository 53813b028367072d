"""The admin shows which token reported each app status, read-only."""

from __future__ import annotations

import pytest
from django.urls import reverse

from agents.models import AppStatus
from agents.services.tokens import agent_token_issue
from tests.helpers.responses import assert_status

pytestmark = pytest.mark.django_db


def test_the_reporting_token_is_shown_in_the_list_and_the_detail(superuser_web, agent, member):
    issued = agent_token_issue(actor=member, agent=agent, name="stolen-laptop")
    status = AppStatus.objects.create(agent=agent, token=issued.token, app_slug="claude", state="idle", message="hi")

    listing = superuser_web.get(reverse("admin:agents_appstatus_changelist"))
    detail = superuser_web.get(reverse("admin:agents_appstatus_change", args=[status.pk]))

    assert_status(listing, 200)
    assert_status(detail, 200)
    assert f"stolen-laptop ({issued.token.hint})" in listing.content.decode()
    assert f"stolen-laptop ({issued.token.hint})" in detail.content.decode()
