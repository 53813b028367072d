"""Web sessions and the raw-data Django admin."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from agents.models import AgentToken
from audit.models import AuditEvent
from tests.helpers.factories import PASSWORD, mode

pytestmark = pytest.mark.django_db


def test_session_and_csrf_cookies_are_secure_outside_debug():
    """The suite runs with DEBUG off, as production does."""
    assert settings.DEBUG is False
    assert settings.SESSION_COOKIE_SECURE is True
    assert settings.CSRF_COOKIE_SECURE is True
    assert settings.SESSION_COOKIE_HTTPONLY is True
    assert 0 < settings.SESSION_COOKIE_AGE <= 12 * 3600


def test_sign_in_sets_a_secure_http_only_session_cookie(member):
    response = Client().post(reverse("ui:login"), {"username": member.username, "password": PASSWORD})
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["secure"] and cookie["httponly"]
    assert cookie["samesite"] == "Lax"


def test_pages_cannot_be_framed(member_web):
    assert member_web.get(reverse("ui:home"))["X-Frame-Options"] == "DENY"


@pytest.fixture
def superuser_web():
    user = get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)
    client = Client()
    client.force_login(user)
    return client


def test_django_admin_stays_available(superuser_web):
    assert superuser_web.get("/admin/").status_code == 200


def test_audit_events_are_read_only_in_the_django_admin(superuser_web, workspace, admin_user):
    from agents.services.workspaces import workspace_mode_set

    workspace_mode_set(actor=admin_user, workspace=workspace, permission_mode=mode("no-user-data"), reason="r")
    event = AuditEvent.objects.latest("id")
    page = superuser_web.get(reverse("admin:audit_auditevent_change", args=[event.id])).content.decode()
    assert 'name="_save"' not in page
    assert superuser_web.get(reverse("admin:audit_auditevent_add")).status_code == 403
    assert (
        superuser_web.post(reverse("admin:audit_auditevent_delete", args=[event.id]), {"post": "yes"}).status_code
        == 403
    )
    assert AuditEvent.objects.filter(id=event.id).exists()


def test_token_digests_never_show_in_the_django_admin(superuser_web, agent, agent_token):
    token = AgentToken.objects.get(agent=agent)
    page = superuser_web.get(reverse("admin:agents_agenttoken_change", args=[token.pk])).content.decode()
    assert token.hint in page
    assert token.digest not in page
    listing = superuser_web.get(reverse("admin:agents_agenttoken_changelist")).content.decode()
    assert token.digest not in listing
