"""The workspace page's mode change warns about agents whose own, looser mode the change does not limit."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from tests.helpers.factories import AgentFactory, CustomModeFactory, WorkspaceFactory, mode

pytestmark = pytest.mark.django_db


def _warnings(response) -> list[str]:
    return [message.message for message in get_messages(response.wsgi_request) if message.level_tag == "warning"]


def test_mode_change_warns_naming_the_looser_agents(admin_web, workspace):
    AgentFactory(workspace=workspace, name="builder", permission_mode=mode("default"))
    AgentFactory(workspace=workspace, name="inherits")
    response = admin_web.post(
        reverse("ui:workspace-mode", args=[workspace.pk]), {"permission_mode": "no-user-data", "reason": "r"}
    )
    assert response.status_code == 302
    assert _warnings(response) == [
        "1 agent(s) keep a looser override of their own, which this change does not limit: "
        "builder (default: agent:gitsshkey, agent:external-auth)."
    ]


def test_the_warning_is_shown_on_the_page(admin_web, workspace):
    AgentFactory(workspace=workspace, name="builder", permission_mode=mode("default"))
    page = admin_web.post(
        reverse("ui:workspace-mode", args=[workspace.pk]),
        {"permission_mode": "no-user-data", "reason": "r"},
        follow=True,
    ).content.decode()
    assert 'class="msg-warning"' in page
    assert "builder (default: agent:gitsshkey, agent:external-auth)" in page


def test_no_warning_without_a_looser_override(member_web, workspace):
    AgentFactory(workspace=workspace, name="tight", permission_mode=mode("no-user-data"))
    response = member_web.post(
        reverse("ui:workspace-mode", args=[workspace.pk]), {"permission_mode": "no-user-data", "reason": ""}
    )
    assert response.status_code == 302
    assert _warnings(response) == []


def test_bulk_change_warns_naming_workspace_and_agent(admin_web):
    first = WorkspaceFactory(name="alpha")
    second = WorkspaceFactory(name="beta")
    AgentFactory(workspace=first, name="main", permission_mode=CustomModeFactory())
    AgentFactory(workspace=second, name="main")
    response = admin_web.post(
        reverse("ui:workspace-bulk"),
        {"workspace": [str(first.pk), str(second.pk)], "permission_mode": "no-user-data", "reason": "r"},
    )
    assert response.status_code == 302
    assert _warnings(response) == [
        "1 agent(s) keep a looser override of their own, which this change does not limit: "
        "alpha/main (git-only: agent:gitsshkey)."
    ]
