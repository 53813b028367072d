"""What each role may post: mode changes, loosening confirmation, bulk change, tokens, custom modes, reports.

A forged POST (a control the page does not offer) must be refused on the server, with nothing written.
"""

from __future__ import annotations

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse

from agents.models import AgentToken, Workspace, WorkspaceAgent
from audit.models import AuditEvent
from policies.models import PermissionMode
from tests.helpers.clients import client_logged_in
from tests.helpers.factories import WorkspaceFactory, mode

pytestmark = pytest.mark.django_db


def _mode_url(workspace) -> str:
    return reverse("ui:workspace-mode", args=[workspace.pk])


def _mode_of(workspace) -> str:
    return Workspace.objects.get(pk=workspace.pk).permission_mode_id


# --- workspace mode -------------------------------------------------------------------------


def test_admin_tightens_with_reason_and_sees_a_message(admin_web, workspace):
    response = admin_web.post(
        _mode_url(workspace), {"permission_mode": "no-user-data", "reason": "agent needs no secrets"}, follow=True
    )
    assert response.status_code == 200
    assert _mode_of(workspace) == "no-user-data"
    assert "changed from default to no-user-data" in response.content.decode()
    event = AuditEvent.objects.get(action="workspace.mode_changed", workspace_id=workspace.id)
    assert event.details["reason"] == "agent needs no secrets"


def test_owner_may_tighten_own_workspace(member_web, workspace):
    member_web.post(_mode_url(workspace), {"permission_mode": "no_user_data", "reason": ""})
    assert _mode_of(workspace) == "no-user-data"


def test_loosening_asks_for_confirmation_first(admin_web, workspace):
    """Loosening without the confirm flag shows a confirmation step and changes nothing."""
    workspace.permission_mode = mode("no-user-data")
    workspace.save()
    response = admin_web.post(_mode_url(workspace), {"permission_mode": "default", "reason": "needs git"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "Confirm loosening" in body and "agent:gitsshkey" in body
    assert _mode_of(workspace) == "no-user-data"


def test_loosening_requires_a_reason_even_when_confirmed(admin_web, workspace):
    """A forged confirmed POST without a reason is refused: loosening always carries a reason."""
    workspace.permission_mode = mode("no-user-data")
    workspace.save()
    response = admin_web.post(_mode_url(workspace), {"permission_mode": "default", "confirm_loosen": "on"})
    assert response.status_code == 400
    assert "Loosening needs a reason." in response.content.decode()
    assert _mode_of(workspace) == "no-user-data"
    assert not AuditEvent.objects.filter(action="workspace.mode_changed").exists()


def test_confirmed_loosening_with_reason_is_made(admin_web, workspace):
    workspace.permission_mode = mode("no-user-data")
    workspace.save()
    admin_web.post(_mode_url(workspace), {"permission_mode": "default", "reason": "git push", "confirm_loosen": "on"})
    assert _mode_of(workspace) == "default"


def test_member_forged_loosening_is_refused(member_web, workspace):
    """The member's select offers no looser mode; a hand-made POST is still refused by the server."""
    workspace.permission_mode = mode("no-user-data")
    workspace.save()
    response = member_web.post(
        _mode_url(workspace), {"permission_mode": "default", "reason": "please", "confirm_loosen": "on"}
    )
    assert response.status_code == 403
    body = response.content.decode()
    assert "Workspace owners may only tighten" in body and "Nothing was changed." in body
    assert _mode_of(workspace) == "no-user-data"


def test_auditor_forged_mode_change_is_refused(auditor_web, workspace):
    """Auditors get disabled controls; a forged POST answers 403 and writes nothing."""
    response = auditor_web.post(_mode_url(workspace), {"permission_mode": "no-user-data", "reason": "x"})
    assert response.status_code == 403
    assert _mode_of(workspace) == "default"
    assert not AuditEvent.objects.filter(action="workspace.mode_changed").exists()


def test_member_cannot_touch_another_members_workspace(member_web, other_member):
    """Another member's workspace is a 404, as in the API: no existence leak."""
    theirs = WorkspaceFactory(owner=other_member)
    response = member_web.post(_mode_url(theirs), {"permission_mode": "no-user-data", "reason": "x"})
    assert response.status_code == 404
    assert _mode_of(theirs) == "default"


def test_anonymous_post_is_sent_to_sign_in(anonymous_web, workspace):
    response = anonymous_web.post(_mode_url(workspace), {"permission_mode": "no-user-data"})
    assert response.status_code == 302
    assert _mode_of(workspace) == "default"


def test_post_without_csrf_token_is_refused(member, workspace):
    """Every form carries a CSRF token; a cross-site POST without it is a 403."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(member)
    response = client.post(_mode_url(workspace), {"permission_mode": "no-user-data", "reason": "x"})
    assert response.status_code == 403
    assert _mode_of(workspace) == "default"


def test_unknown_mode_is_a_message_not_an_error(admin_web, workspace):
    response = admin_web.post(_mode_url(workspace), {"permission_mode": "nope", "reason": "x"}, follow=True)
    assert response.status_code == 200
    assert "Choose a known permission mode." in response.content.decode()


# --- agent override -------------------------------------------------------------------------


def test_admin_sets_and_clears_an_agent_override(admin_web, agent):
    url = reverse("ui:agent-mode", args=[agent.pk])
    admin_web.post(url, {"permission_mode": "no-user-data", "reason": "mcp only"})
    assert WorkspaceAgent.objects.get(pk=agent.pk).permission_mode_id == "no-user-data"
    admin_web.post(url, {"permission_mode": "inherit", "reason": "back", "confirm_loosen": "on"})
    assert WorkspaceAgent.objects.get(pk=agent.pk).permission_mode_id is None


def test_member_forged_clear_of_a_tightening_override_is_refused(member_web, agent):
    """Clearing an override is loosening when the workspace mode is looser: owners may not."""
    agent.permission_mode = mode("no-user-data")
    agent.save()
    url = reverse("ui:agent-mode", args=[agent.pk])
    response = member_web.post(url, {"permission_mode": "inherit", "reason": "x", "confirm_loosen": "on"})
    assert response.status_code == 403
    assert WorkspaceAgent.objects.get(pk=agent.pk).permission_mode_id == "no-user-data"


def test_auditor_forged_agent_override_is_refused(auditor_web, agent):
    response = auditor_web.post(reverse("ui:agent-mode", args=[agent.pk]), {"permission_mode": "no-user-data"})
    assert response.status_code == 403
    assert WorkspaceAgent.objects.get(pk=agent.pk).permission_mode_id is None


# --- bulk change ----------------------------------------------------------------------------


def test_admin_bulk_change_one_audit_event_each(admin_web, member, other_member):
    targets = [WorkspaceFactory(owner=member), WorkspaceFactory(owner=other_member), WorkspaceFactory(owner=member)]
    untouched = WorkspaceFactory(owner=member)
    response = admin_web.post(
        reverse("ui:workspace-bulk"),
        {"workspace": [str(ws.pk) for ws in targets], "permission_mode": "no-user-data", "reason": "lockdown"},
        follow=True,
    )
    assert "3 workspace(s) now use mode no-user-data." in response.content.decode()
    assert all(_mode_of(ws) == "no-user-data" for ws in targets)
    assert _mode_of(untouched) == "default"
    events = AuditEvent.objects.filter(action="workspace.mode_changed")
    assert events.count() == 3
    assert {event.details["reason"] for event in events} == {"lockdown"}


def test_bulk_change_needs_a_reason(admin_web, workspace):
    admin_web.post(reverse("ui:workspace-bulk"), {"workspace": [str(workspace.pk)], "permission_mode": "no-user-data"})
    assert _mode_of(workspace) == "default"


def test_bulk_loosening_asks_for_confirmation(admin_web, member):
    workspaces = WorkspaceFactory.create_batch(2, owner=member, permission_mode=mode("no-user-data"))
    data = {"workspace": [str(ws.pk) for ws in workspaces], "permission_mode": "default", "reason": "git"}
    response = admin_web.post(reverse("ui:workspace-bulk"), data)
    assert "Confirm loosening" in response.content.decode()
    assert all(_mode_of(ws) == "no-user-data" for ws in workspaces)
    admin_web.post(reverse("ui:workspace-bulk"), {**data, "confirm_loosen": "on"})
    assert all(_mode_of(ws) == "default" for ws in workspaces)


def test_member_bulk_refusal_rolls_everything_back(member_web, member):
    """One refused change (a loosening) undoes the allowed ones before it: all in one transaction."""
    PermissionMode.objects.create(name="connect-only", scopes=["agent:connect"])
    tightened_first = WorkspaceFactory(owner=member, name="a-first")
    loosened_second = WorkspaceFactory(owner=member, name="b-second", permission_mode=mode("connect-only"))
    data = {
        "workspace": [str(tightened_first.pk), str(loosened_second.pk)],
        "permission_mode": "no-user-data",
        "reason": "x",
        "confirm_loosen": "on",
    }
    response = member_web.post(reverse("ui:workspace-bulk"), data)
    assert response.status_code == 403
    assert _mode_of(tightened_first) == "default"
    assert _mode_of(loosened_second) == "connect-only"
    assert not AuditEvent.objects.filter(action="workspace.mode_changed").exists()


def test_member_bulk_including_another_members_workspace_is_refused(member_web, member, other_member):
    mine, theirs = WorkspaceFactory(owner=member), WorkspaceFactory(owner=other_member)
    data = {"workspace": [str(mine.pk), str(theirs.pk)], "permission_mode": "no-user-data", "reason": "x"}
    assert member_web.post(reverse("ui:workspace-bulk"), data).status_code == 404
    assert _mode_of(mine) == "default" and _mode_of(theirs) == "default"


def test_auditor_forged_bulk_change_is_refused(auditor_web, workspace):
    data = {"workspace": [str(workspace.pk)], "permission_mode": "no-user-data", "reason": "x"}
    assert auditor_web.post(reverse("ui:workspace-bulk"), data).status_code == 403
    assert _mode_of(workspace) == "default"


def test_bulk_with_garbage_ids_is_a_message_not_a_500(admin_web):
    data = {"workspace": ["not-a-uuid"], "permission_mode": "no-user-data", "reason": "x"}
    response = admin_web.post(reverse("ui:workspace-bulk"), data, follow=True)
    assert response.status_code == 200
    assert "Workspaces:" in response.content.decode()


# --- agent tokens ---------------------------------------------------------------------------


def test_issued_token_is_shown_once_and_never_kept(member_web, agent):
    """The plaintext is in the POST response only: not in the session, not in the DB, not on the next page."""
    url = reverse("ui:agent-token-issue", args=[agent.pk])
    response = member_web.post(url, {"name": "mcp", "scopes": ["agent:connect", "agent:report"], "lifetime_days": 7})
    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"
    body = response.content.decode()
    assert "you will not see this again" in body
    token = AgentToken.objects.get(agent=agent, name="mcp")
    assert token.scopes == ["agent:connect", "agent:report"]
    plaintext = body.split('<code id="new-token">')[1].split("</code>")[0]
    assert plaintext.startswith("cda_")
    assert plaintext not in member_web.get(reverse("ui:workspace-detail", args=[agent.workspace_id])).content.decode()
    for session in Session.objects.all():
        assert plaintext not in str(session.get_decoded())
    assert plaintext not in str(list(AuditEvent.objects.values_list("details", flat=True)))


def test_token_scope_outside_the_mode_is_refused(member_web, agent):
    agent.permission_mode = mode("no-user-data")
    agent.save()
    url = reverse("ui:agent-token-issue", args=[agent.pk])
    response = member_web.post(url, {"scopes": ["agent:gitsshkey"], "lifetime_days": 7}, follow=True)
    assert "Scopes outside the agent&#x27;s mode" in response.content.decode()
    assert not AgentToken.objects.filter(agent=agent).exists()


def test_auditor_forged_token_issue_is_refused(auditor_web, agent):
    url = reverse("ui:agent-token-issue", args=[agent.pk])
    response = auditor_web.post(url, {"scopes": ["agent:connect"], "lifetime_days": 1})
    assert response.status_code == 403
    assert not AgentToken.objects.filter(agent=agent).exists()
    assert "cda_" not in response.content.decode()


def test_owner_revokes_a_token(member_web, agent, agent_token):
    token = AgentToken.objects.get(agent=agent)
    response = member_web.post(reverse("ui:agent-token-revoke", args=[agent.pk, token.pk]), follow=True)
    assert "Revoked" in response.content.decode()
    assert AgentToken.objects.get(pk=token.pk).revoked_at is not None


def test_auditor_forged_revoke_is_refused(auditor_web, agent, agent_token):
    token = AgentToken.objects.get(agent=agent)
    response = auditor_web.post(reverse("ui:agent-token-revoke", args=[agent.pk, token.pk]))
    assert response.status_code == 403
    assert AgentToken.objects.get(pk=token.pk).revoked_at is None


def test_other_member_cannot_revoke(other_member, agent, agent_token):
    token = AgentToken.objects.get(agent=agent)
    response = client_logged_in(other_member).post(reverse("ui:agent-token-revoke", args=[agent.pk, token.pk]))
    assert response.status_code == 404
    assert AgentToken.objects.get(pk=token.pk).revoked_at is None


# --- permission modes -----------------------------------------------------------------------


def test_modes_page_is_a_scope_by_mode_table(member_web):
    body = member_web.get(reverse("ui:modes")).content.decode()
    assert "agent:gitsshkey" in body and "built-in · read-only" in body
    assert "Create mode" not in body


def test_admin_creates_a_custom_mode_from_checkboxes(admin_web):
    response = admin_web.post(
        reverse("ui:modes"),
        {"name": "git-only", "description": "ssh only", "scopes": ["agent:connect", "agent:gitsshkey"]},
        follow=True,
    )
    assert "Created permission mode git-only." in response.content.decode()
    assert PermissionMode.objects.get(name="git-only").scopes == ["agent:connect", "agent:gitsshkey"]
    assert AuditEvent.objects.filter(action="permission_mode.created").exists()


def test_builtin_names_cannot_be_recreated(admin_web):
    admin_web.post(reverse("ui:modes"), {"name": "default", "scopes": ["agent:connect"]}, follow=True)
    assert PermissionMode.objects.get(name="default").scopes == list(mode("default").scopes)
    assert len(PermissionMode.objects.get(name="default").scopes) == 4


@pytest.mark.parametrize("role", ["auditor", "member"])
def test_forged_custom_mode_creation_is_refused(role, web_for):
    response = web_for(role).post(reverse("ui:modes"), {"name": "sneaky", "scopes": ["agent:connect"]})
    assert response.status_code == 403
    assert not PermissionMode.objects.filter(name="sneaky").exists()


# --- audit and reports ----------------------------------------------------------------------


def test_audit_page_filters_paginates_and_links_exports(admin_web, member):
    workspaces = WorkspaceFactory.create_batch(3, owner=member)
    from django.contrib.auth import get_user_model

    from agents.services.workspaces import workspace_mode_set_bulk

    admin = get_user_model().objects.get(username__startswith="admin")
    for index in range(60):
        target = mode("no-user-data") if index % 2 == 0 else mode("default")
        workspace_mode_set_bulk(actor=admin, workspaces=workspaces[:1], permission_mode=target, reason=f"r{index}")
    response = admin_web.get(reverse("ui:audit"), {"action": "workspace.mode_changed"})
    body = response.content.decode()
    assert body.count("<code>workspace.mode_changed</code>") == 50
    assert 'href="/api/v2/audit/export?format=csv&amp;action=workspace.mode_changed"' in body
    assert 'href="/api/v2/audit/export?format=jsonl&amp;action=workspace.mode_changed"' in body
    assert 'href="/api/v2/audit/export?format=ocsf&amp;action=workspace.mode_changed"' in body
    assert "Older →" in body
    cursor = body.split("cursor=")[1].split('"')[0]
    older = admin_web.get(reverse("ui:audit"), {"action": "workspace.mode_changed", "cursor": cursor}).content.decode()
    assert older.count("<code>workspace.mode_changed</code>") == 10
    assert "Older →" not in older


def test_audit_page_bad_filter_is_a_message(auditor_web):
    response = auditor_web.get(reverse("ui:audit"), {"since": "yesterday-ish"})
    assert response.status_code == 200
    assert "Invalid filter." in response.content.decode()


def test_audit_detail_of_unknown_event_is_404(auditor_web):
    assert auditor_web.get(reverse("ui:audit-detail", args=[999999])).status_code == 404


def test_auditor_report_has_no_apply_button(auditor_web, agent):
    body = auditor_web.get(reverse("ui:reports")).content.decode()
    assert agent.name in body
    assert "Download CSV" in body and "/api/v2/reports/permissions?format=csv" in body
    assert "Apply no-user-data" not in body


def test_admin_applies_a_recommendation_through_the_mode_service(admin_web, agent):
    body = admin_web.get(reverse("ui:reports")).content.decode()
    assert "Apply no-user-data" in body
    response = admin_web.post(
        reverse("ui:report-apply"),
        {"agent_id": str(agent.pk), "permission_mode": "no-user-data", "reason": "least privilege"},
        follow=True,
    )
    assert "now uses no-user-data" in response.content.decode()
    assert WorkspaceAgent.objects.get(pk=agent.pk).permission_mode_id == "no-user-data"
    event = AuditEvent.objects.get(action="agent.mode_changed", agent_id=agent.id)
    assert event.details["reason"] == "least privilege"


@pytest.mark.parametrize("role", ["auditor", "member"])
def test_forged_recommendation_apply_is_refused(role, web_for, agent):
    data = {"agent_id": str(agent.pk), "permission_mode": "no-user-data", "reason": "x"}
    assert web_for(role).post(reverse("ui:report-apply"), data).status_code == 403
    assert WorkspaceAgent.objects.get(pk=agent.pk).permission_mode_id is None


def test_apply_without_reason_changes_nothing(admin_web, agent):
    admin_web.post(reverse("ui:report-apply"), {"agent_id": str(agent.pk), "permission_mode": "no-user-data"})
    assert WorkspaceAgent.objects.get(pk=agent.pk).permission_mode_id is None
