"""The demo of `make run`: idempotent, DEBUG-only, and the secrets it prints really work."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command
from django.urls import reverse

from agents.models import AgentToken, Workspace
from audit.models import AuditEvent
from tests.helpers.clients import client_for_agent_token

pytestmark = pytest.mark.django_db


def _seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def _printed(output: str, label: str) -> str | None:
    match = re.search(rf"^  {label}\s+(\S+)$", output, re.M)
    return match.group(1) if match else None


def test_refuses_without_debug(settings):
    """It creates an admin whose password it prints: never on a production settings file."""
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        _seed()
    assert not Workspace.objects.exists()


def test_first_run_prints_working_credentials(settings):
    settings.DEBUG = True
    output = _seed("--url", "http://127.0.0.1:8123/")

    assert "http://127.0.0.1:8123/" in output
    password = _printed(output, "password")
    token = _printed(output, "agent token")
    assert authenticate(username="admin", password=password) is not None
    response = client_for_agent_token(token).get(reverse("agents:agent-manifest"))
    assert response.status_code == 200, response.content
    assert response.json()["workspace_name"] == "demo"


def test_second_run_changes_nothing_and_prints_no_secret(settings):
    settings.DEBUG = True
    first = _seed()
    events_before = AuditEvent.objects.count()

    second = _seed()

    assert _printed(first, "agent token") not in second
    assert _printed(first, "password") not in second
    assert "cda_" not in second
    assert AgentToken.objects.count() == 1
    assert Workspace.objects.count() == 1
    assert AuditEvent.objects.count() == events_before


def test_reset_revokes_the_old_token_and_issues_a_new_one(settings):
    settings.DEBUG = True
    old_token = _printed(_seed(), "agent token")

    output = _seed("--reset")

    new_token = _printed(output, "agent token")
    assert new_token and new_token != old_token
    assert client_for_agent_token(old_token).get(reverse("agents:agent-manifest")).status_code == 401
    assert client_for_agent_token(new_token).get(reverse("agents:agent-manifest")).status_code == 200
    assert authenticate(username="admin", password=_printed(output, "password")) is not None


def test_the_demo_admin_account_is_audited_without_its_password(settings):
    """Regression: seed_demo created the admin and reset its password without an audit row."""
    settings.DEBUG = True
    first = _seed()
    created = AuditEvent.objects.get(action="user.created")
    assert (created.actor_type, created.actor) == ("system", "seed_demo")
    assert created.details["username"] == "admin"
    assert created.details["is_superuser"] is True

    reset = _seed("--reset")
    updated = AuditEvent.objects.get(action="user.updated")
    assert (updated.actor_type, updated.actor) == ("system", "seed_demo")
    assert updated.details["password_changed"] is True
    for output in (first, reset):
        password = _printed(output, "password")
        assert all(password not in str(event.details) for event in AuditEvent.objects.all())
