"""The "Webhook deliveries" page: admins and auditors see what was sent and what keeps failing; members get 404."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from agents.models import WebhookDelivery
from tests.helpers.pages import count_queries
from tests.helpers.responses import assert_status

pytestmark = pytest.mark.django_db

SECRET_URL = "https://hook-user:hunter2@hooks.example.com:8443/services/T000/query-path-secret?token=query-secret"


def _delivery(**fields) -> WebhookDelivery:
    return WebhookDelivery.objects.create(
        **{"event": "access_request.created", "url": SECRET_URL, "body": "{}", "next_attempt_at": timezone.now()}
        | fields
    )


@pytest.mark.parametrize(("role", "expected"), [("admin", 200), ("auditor", 200), ("member", 404), ("anonymous", 302)])
def test_who_may_see_the_page(web_for, role, expected):
    assert_status(web_for(role).get(reverse("ui:webhooks")), expected)


def test_failing_and_delivered_rows_are_shown_with_the_host_only(admin_web):
    _delivery(event="access_request.approved", attempts=4, last_status=500, last_error="HTTP 500")
    _delivery(event="access_request.denied", attempts=1, last_status=204, delivered_at=timezone.now())

    body = admin_web.get(reverse("ui:webhooks")).content.decode()

    assert "access_request.approved" in body and "access_request.denied" in body
    assert "HTTP 500" in body
    assert "1 failing" in body and "1 waiting" in body
    assert "hooks.example.com:8443" in body
    for secret in ("hunter2", "hook-user", "query-path-secret", "query-secret"):
        assert secret not in body, f"{secret} of the receiver's URL is shown"


def test_the_navigation_links_the_page_for_readers_only(admin_web, member_web):
    link = f'href="{reverse("ui:webhooks")}"'
    assert link in admin_web.get(reverse("ui:home")).content.decode()
    assert link not in member_web.get(reverse("ui:home")).content.decode()


def test_the_page_costs_the_same_queries_for_few_rows_or_many(admin_web):
    _delivery()
    few = count_queries(admin_web, reverse("ui:webhooks"))
    for attempts in range(60):
        _delivery(attempts=attempts, next_attempt_at=timezone.now() + timedelta(minutes=attempts))
    assert count_queries(admin_web, reverse("ui:webhooks")) == few
