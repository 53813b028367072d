"""The access-request pages: the pending queue with Approve and Deny, the history, grants and Revoke on the
workspace page, the pending count in the navigation. Who may decide is checked by the services whatever the
page shows; every refusal is a message or the 403 page, never a 500."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from agents.models import AccessRequest
from audit import actions
from audit.models import AuditEvent
from tests.helpers.clients import client_logged_in
from tests.helpers.factories import AgentFactory, UserFactory, WorkspaceFactory
from tests.helpers.pages import count_queries
from ui.views import access_requests as views

pytestmark = pytest.mark.django_db

QUEUE = "ui:access-requests"
HISTORY = "ui:access-request-history"


def _request(agent, *, scopes=("agent:gitsshkey",), duration=900, age=timedelta(minutes=1), **fields):
    """An access request as the agent API leaves it (pending unless `fields` say otherwise)."""
    return AccessRequest.objects.create(
        agent=agent,
        workspace=agent.workspace,
        scopes=list(scopes),
        reason="need to push a signed commit",
        duration_seconds=duration,
        requested_at=timezone.now() - age,
        **fields,
    )


def _granted(agent, *, decided_by, minutes_left=10, **fields):
    now = timezone.now()
    return _request(
        agent,
        state=AccessRequest.APPROVED,
        decided_at=now,
        decided_by=decided_by,
        decision_reason="fine",
        expires_at=now + timedelta(minutes=minutes_left),
        **fields,
    )


def _messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def _approve(client, access_request, **data):
    url = reverse("ui:access-request-approve", args=[access_request.pk])
    return client.post(url, {"reason": "ok for the release", **data}, follow=True)


def _deny(client, access_request, **data):
    return client.post(
        reverse("ui:access-request-deny", args=[access_request.pk]), {"reason": "no", **data}, follow=True
    )


def _revoke(client, access_request, **data):
    url = reverse("ui:access-request-revoke", args=[access_request.pk])
    return client.post(url, {"reason": "done early", **data}, follow=True)


# The queue, per role


def test_admin_sees_the_pending_queue_with_approve_and_deny(admin_web, agent):
    pending = _request(agent)
    _request(AgentFactory(workspace=agent.workspace), state=AccessRequest.DENIED, decided_at=timezone.now())
    body = admin_web.get(reverse(QUEUE)).content.decode()
    assert body.count('id="request-') == 1
    assert agent.name in body and agent.workspace.name in body and agent.workspace.owner.username in body
    assert "need to push a signed commit" in body and "<code>agent:gitsshkey</code>" in body
    assert "for 15 min" in body and "lapses in 58 min" in body
    assert reverse("ui:access-request-approve", args=[pending.pk]) in body
    assert reverse("ui:access-request-deny", args=[pending.pk]) in body


def test_the_duration_choices_stop_at_the_requested_duration(admin_web, agent):
    """A 20-minute request offers 5 and 15 minutes and its own 20, nothing longer."""
    pending = _request(agent, duration=1200)
    body = admin_web.get(reverse(QUEUE)).content.decode()
    select = body.split(f'id="approve-duration-{pending.pk}"')[1].split("</select>")[0]
    assert '<option value="300">' in select and '<option value="900">' in select
    assert '<option value="1200" selected>20 min (asked)</option>' in select
    assert 'value="1800"' not in select and 'value="3600"' not in select


def test_a_lapsed_pending_request_is_not_in_the_queue(admin_web, agent, settings):
    settings.CODERAUTH_ELEVATION_PENDING_SECONDS = 600
    _request(agent, age=timedelta(minutes=11))
    body = admin_web.get(reverse(QUEUE)).content.decode()
    assert "No pending requests." in body


def test_auditor_sees_the_queue_read_only(auditor_web, agent):
    _request(agent)
    body = auditor_web.get(reverse(QUEUE)).content.decode()
    assert 'id="request-' in body
    assert ">Approve</button>" not in body and ">Deny</button>" not in body
    assert "Read-only: auditors do not decide." in body


def test_owner_decides_requests_of_their_own_workspace(member_web, agent):
    pending = _request(agent)
    body = member_web.get(reverse(QUEUE)).content.decode()
    assert ">Approve</button>" in body
    response = _approve(member_web, pending)
    assert "Approved" in " ".join(_messages(response))
    pending.refresh_from_db()
    assert pending.state == AccessRequest.APPROVED


def test_owner_sees_no_buttons_and_is_refused_when_only_admins_approve(member_web, agent, settings):
    """CODERAUTH_ELEVATION_APPROVERS=admins: the owner still sees the request, but a forged POST answers 403."""
    settings.CODERAUTH_ELEVATION_APPROVERS = "admins"
    pending = _request(agent)
    body = member_web.get(reverse(QUEUE)).content.decode()
    assert 'id="request-' in body and ">Approve</button>" not in body
    response = _approve(member_web, pending)
    assert response.status_code == 403
    pending.refresh_from_db()
    assert pending.state == AccessRequest.PENDING


def test_auditor_forged_approval_is_refused_with_403(auditor_web, agent):
    """Security: an auditor's hand-made POST changes nothing and writes no audit row."""
    pending = _request(agent)
    response = _approve(auditor_web, pending)
    assert response.status_code == 403
    pending.refresh_from_db()
    assert pending.state == AccessRequest.PENDING
    assert not AuditEvent.objects.filter(action=actions.ACCESS_REQUEST_APPROVED).exists()


def test_another_member_neither_sees_nor_decides_the_request(agent):
    """Security: another member's request is not listed, and deciding it is a 404, as with any unseen object."""
    stranger = client_logged_in(UserFactory())
    pending = _request(agent)
    assert 'id="request-' not in stranger.get(reverse(QUEUE)).content.decode()
    assert _approve(stranger, pending).status_code == 404
    assert _deny(stranger, pending).status_code == 404
    pending.refresh_from_db()
    assert pending.state == AccessRequest.PENDING


def test_anonymous_visitors_go_to_the_login_page(anonymous_web):
    response = anonymous_web.get(reverse(QUEUE))
    assert response.status_code == 302 and reverse("ui:login") in response["Location"]


# Decisions


def test_approve_for_a_shorter_time_grants_from_now_and_audits(admin_web, agent):
    pending = _request(agent, duration=1800)
    before = timezone.now()
    response = _approve(admin_web, pending, duration_seconds=300)
    assert response.status_code == 200 and response.redirect_chain[-1][0] == reverse(QUEUE)
    assert f"Approved: {agent.name} may use agent:gitsshkey for 5 min." in _messages(response)
    pending.refresh_from_db()
    assert pending.state == AccessRequest.APPROVED
    assert before + timedelta(seconds=300) <= pending.expires_at <= timezone.now() + timedelta(seconds=300)
    event = AuditEvent.objects.get(action=actions.ACCESS_REQUEST_APPROVED)
    assert event.details["decision_reason"] == "ok for the release"


def test_approve_longer_than_asked_is_refused_with_a_message(admin_web, agent):
    pending = _request(agent, duration=300)
    response = _approve(admin_web, pending, duration_seconds=3600)
    assert response.status_code == 200
    assert any("seconds" in message for message in _messages(response))
    pending.refresh_from_db()
    assert pending.state == AccessRequest.PENDING


@pytest.mark.parametrize("decide", [_approve, _deny])
@pytest.mark.parametrize("reason", ["", "   "])
def test_a_decision_needs_a_reason(admin_web, agent, decide, reason):
    pending = _request(agent)
    response = decide(admin_web, pending, reason=reason)
    assert response.status_code == 200
    assert any(message.startswith("Reason:") for message in _messages(response))
    pending.refresh_from_db()
    assert pending.state == AccessRequest.PENDING


def test_deny_records_the_decision(admin_web, agent):
    pending = _request(agent)
    response = _deny(admin_web, pending, reason="not during the freeze")
    assert any("Denied" in message for message in _messages(response))
    pending.refresh_from_db()
    assert pending.state == AccessRequest.DENIED and pending.decision_reason == "not during the freeze"


def test_deciding_an_already_decided_request_is_a_message_not_an_error(admin_web, agent):
    """Two approvers at once: the second one's click answers with the request's state (409), never a 500."""
    pending = _request(agent)
    _deny(admin_web, pending)
    response = _approve(admin_web, pending)
    assert response.status_code == 200
    assert "The access request is denied, not pending." in _messages(response)
    pending.refresh_from_db()
    assert pending.state == AccessRequest.DENIED


def test_approving_a_lapsed_request_is_refused_and_records_it_expired(admin_web, agent, settings):
    settings.CODERAUTH_ELEVATION_PENDING_SECONDS = 600
    lapsed = _request(agent, age=timedelta(minutes=11))
    response = _approve(admin_web, lapsed)
    assert "The access request is expired, not pending." in _messages(response)
    lapsed.refresh_from_db()
    assert lapsed.state == AccessRequest.PENDING and lapsed.expires_at is None
    assert AuditEvent.objects.filter(action=actions.ACCESS_REQUEST_EXPIRED).count() == 1


# The navigation's pending count


def test_the_navigation_counts_pending_requests_for_approvers(admin_web, auditor_web, workspace):
    for _ in range(3):
        _request(AgentFactory(workspace=workspace))
    admin_nav = admin_web.get(reverse("ui:home")).content.decode()
    assert 'title="Pending requests you may decide">3</span>' in admin_nav
    auditor_nav = auditor_web.get(reverse("ui:home")).content.decode()
    assert ">Access requests</a>" in auditor_nav and "Pending requests you may decide" not in auditor_nav


def test_the_navigation_count_costs_the_same_whatever_the_number_pending(admin_web, workspace):
    """Dashboard with no requests and with five: the count is one COUNT query, whatever the number."""
    url = reverse("ui:home")
    none = count_queries(admin_web, url)
    for _ in range(5):
        _request(AgentFactory(workspace=workspace))
    assert count_queries(admin_web, url) == none


# Query counts


def _requests_in_many_workspaces(count: int) -> None:
    for _ in range(count):
        _request(AgentFactory(workspace=WorkspaceFactory()))


def test_the_queue_costs_the_same_queries_for_two_requests_or_twenty(admin_web):
    _requests_in_many_workspaces(2)
    few = count_queries(admin_web, reverse(QUEUE))
    _requests_in_many_workspaces(18)
    assert count_queries(admin_web, reverse(QUEUE)) == few


def test_the_history_costs_the_same_queries_for_two_requests_or_twenty(admin_web, admin_user):
    _requests_in_many_workspaces(2)
    few = count_queries(admin_web, reverse(HISTORY))
    for _ in range(18):
        _granted(AgentFactory(workspace=WorkspaceFactory()), decided_by=admin_user)
    assert count_queries(admin_web, reverse(HISTORY)) == few


# History


def test_history_filters_by_state_workspace_and_agent(admin_web, admin_user, agent):
    other_agent = AgentFactory(workspace=WorkspaceFactory(name="elsewhere"))
    _granted(agent, decided_by=admin_user)
    denied = _request(other_agent, state=AccessRequest.DENIED, decided_at=timezone.now(), decision_reason="nope")

    def rows(**params):
        response = admin_web.get(reverse(HISTORY), params)
        assert response.status_code == 200
        return [row["request"].pk for row in response.context["rows"]]

    assert len(rows()) == 2
    assert rows(state="denied") == [denied.pk]
    assert rows(workspace=str(other_agent.workspace_id)) == [denied.pk]
    assert rows(agent=str(other_agent.pk)) == [denied.pk]
    assert rows(state="approved", agent=str(other_agent.pk)) == []


def test_history_shows_the_time_left_of_a_grant_and_of_a_pending_request(admin_web, admin_user, agent):
    _granted(agent, decided_by=admin_user, minutes_left=30)
    _request(AgentFactory(workspace=agent.workspace))
    body = admin_web.get(reverse(HISTORY)).content.decode()
    assert "29 min left" in body and "lapses undecided in 58 min" in body


def test_history_reads_a_lapsed_grant_as_expired(admin_web, admin_user, agent):
    _granted(agent, decided_by=admin_user, minutes_left=-1)
    response = admin_web.get(reverse(HISTORY), {"state": "expired"})
    assert [row["state"] for row in response.context["rows"]] == ["expired"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"state": "bogus"}, "State: choose one of"),
        ({"agent": "not-a-uuid"}, "Agent id: not a valid id."),
        ({"workspace": "nope"}, "Workspace id: not a valid id."),
        ({"cursor": "forged"}, "Invalid cursor"),
    ],
)
def test_history_bad_filters_are_messages_not_errors(admin_web, agent, params, message):
    _request(agent)
    response = admin_web.get(reverse(HISTORY), params)
    assert response.status_code == 200
    assert any(text.startswith(message) for text in _messages(response)), _messages(response)
    assert response.context["rows"] == []


def test_history_pages_by_keyset(admin_web, workspace, monkeypatch):
    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    made = [_request(AgentFactory(workspace=workspace), age=timedelta(minutes=minute)) for minute in range(1, 6)]
    seen, params = [], {}
    while True:
        response = admin_web.get(reverse(HISTORY), params)
        seen += [row["request"].pk for row in response.context["rows"]]
        if not response.context["next_cursor"]:
            break
        params = {"cursor": response.context["next_cursor"]}
    assert seen == [request.pk for request in made]


def test_history_shows_only_the_members_own_workspaces(member_web, agent):
    mine = _request(agent)
    _request(AgentFactory(workspace=WorkspaceFactory()))
    response = member_web.get(reverse(HISTORY))
    assert [row["request"].pk for row in response.context["rows"]] == [mine.pk]


# Grants on the workspace page


def test_the_workspace_page_lists_live_grants_with_time_left_and_revoke(admin_web, admin_user, agent):
    grant = _granted(agent, decided_by=admin_user, minutes_left=12)
    _granted(AgentFactory(workspace=agent.workspace), decided_by=admin_user, minutes_left=-1)
    body = admin_web.get(reverse("ui:workspace-detail", args=[agent.workspace_id])).content.decode()
    assert body.count('id="grant-') == 1 and f'id="grant-{grant.pk}"' in body
    assert "11 min" in body or "12 min" in body
    assert reverse("ui:access-request-revoke", args=[grant.pk]) in body


def test_auditor_sees_grants_without_a_revoke_button(auditor_web, admin_user, agent):
    _granted(agent, decided_by=admin_user)
    body = auditor_web.get(reverse("ui:workspace-detail", args=[agent.workspace_id])).content.decode()
    assert 'id="grant-' in body and ">Revoke grant</button>" not in body


def test_revoke_ends_the_grant_and_returns_to_the_workspace(admin_web, admin_user, agent):
    grant = _granted(agent, decided_by=admin_user)
    response = _revoke(admin_web, grant)
    assert response.redirect_chain[-1][0] == reverse("ui:workspace-detail", args=[agent.workspace_id])
    assert any("Revoked" in message for message in _messages(response))
    assert "No active grants." in response.content.decode()
    grant.refresh_from_db()
    assert grant.state == AccessRequest.REVOKED and grant.revoke_reason == "done early"


def test_revoking_twice_is_a_message_not_an_error(admin_web, admin_user, agent):
    grant = _granted(agent, decided_by=admin_user)
    _revoke(admin_web, grant)
    response = _revoke(admin_web, grant)
    assert response.status_code == 200
    assert "The access request is revoked, not approved." in _messages(response)


def test_revoke_needs_a_reason(admin_web, admin_user, agent):
    grant = _granted(agent, decided_by=admin_user)
    response = _revoke(admin_web, grant, reason=" ")
    assert any(message.startswith("Reason:") for message in _messages(response))
    grant.refresh_from_db()
    assert grant.state == AccessRequest.APPROVED


def test_the_workspace_page_costs_the_same_queries_for_one_grant_or_eight(admin_web, admin_user, workspace):
    _granted(AgentFactory(workspace=workspace), decided_by=admin_user)
    url = reverse("ui:workspace-detail", args=[workspace.pk])
    few = count_queries(admin_web, url)
    for _ in range(7):
        _granted(AgentFactory(workspace=workspace), decided_by=UserFactory())
    # Each new agent adds nothing either: the page's agent list is already constant in the number of agents.
    assert count_queries(admin_web, url) == few
