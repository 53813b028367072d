"""Just-in-time elevation services: asking, deciding, lapsing, and the audit and webhook rows each writes."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from agents.models import AccessRequest, WebhookDelivery
from agents.selectors import elevation as selectors
from agents.services import elevation as services
from agents.services.principals import agent_principal_resolve
from agents.services.tokens import agent_child_token_issue, agent_token_issue
from audit.models import AuditEvent
from core.exceptions import Conflict, InvalidInput, NotPermitted, ObjectNotFound
from tests.helpers.factories import AgentFactory, UserFactory, mode

pytestmark = pytest.mark.django_db

GIT = "agent:gitsshkey"


def _principal(plaintext: str):
    return agent_principal_resolve(raw_token=plaintext)


@pytest.fixture
def root(member, agent):
    """A root token issued under `default` (every scope), then the agent narrowed to `no-user-data`."""
    issued = agent_token_issue(actor=member, agent=agent, name="root")
    agent.permission_mode = mode("no-user-data")
    agent.save(update_fields=["permission_mode"])
    return issued


@pytest.fixture
def principal(root):
    return _principal(root.plaintext)


def _ask(principal, scopes=(GIT,), reason="push release tag", duration_seconds=900) -> AccessRequest:
    return services.access_request_create(
        principal=principal, scopes=list(scopes), reason=reason, duration_seconds=duration_seconds
    )


def _events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def _age(access_request: AccessRequest, **fields) -> None:
    """Move a request's times into the past, as the clock would."""
    AccessRequest.objects.filter(pk=access_request.pk).update(**fields)


# --- asking ---------------------------------------------------------------------------------------------


def test_a_request_is_pending_and_audited(principal, agent):
    access_request = _ask(principal)

    assert services.access_request_state(access_request) == "pending"
    assert access_request.expires_at is None
    assert access_request.workspace_id == agent.workspace_id
    [event] = _events("access_request.created")
    assert event.agent_id == agent.id and event.workspace_id == agent.workspace_id
    assert event.details["request_id"] == str(access_request.id)
    assert event.details["scopes"] == [GIT]
    assert event.details["reason"] == "push release tag"
    assert event.details["duration_seconds"] == 900


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"scopes": []}, "scopes"),
        ({"scopes": ["admin:all"]}, "scopes"),
        ({"scopes": ["agent:connect"]}, "scopes"),  # the mode allows it already
        ({"reason": "   "}, "reason"),
        ({"reason": "x" * 501}, "reason"),
        ({"duration_seconds": 59}, "duration_seconds"),
        ({"duration_seconds": 3601}, "duration_seconds"),
    ],
)
def test_bad_requests_are_refused_naming_the_field(principal, kwargs, field):
    with pytest.raises(InvalidInput) as refused:
        _ask(principal, **kwargs)
    assert refused.value.field == field
    assert not AccessRequest.objects.exists()
    assert not _events("access_request.created")


def test_the_maximum_duration_is_read_per_call(principal, settings):
    settings.CODERAUTH_ELEVATION_MAX_SECONDS = 120
    with pytest.raises(InvalidInput):
        _ask(principal, duration_seconds=121)
    assert _ask(principal, duration_seconds=120).duration_seconds == 120


def test_one_open_request_per_agent_names_the_open_one(principal):
    first = _ask(principal)
    with pytest.raises(Conflict) as refused:
        _ask(principal, scopes=["agent:external-auth"])
    assert refused.value.extra == {"id": str(first.id)}


def test_a_lapsed_pending_request_no_longer_blocks_a_new_one(principal, settings):
    first = _ask(principal)
    _age(first, requested_at=timezone.now() - timedelta(seconds=settings.CODERAUTH_ELEVATION_PENDING_SECONDS + 1))
    second = _ask(principal)
    assert second.id != first.id


def test_a_child_may_ask_for_what_its_root_carries(principal, agent):
    """The MCP server's narrow child asks on the agent's behalf: the root token's scopes bound the request."""
    child = agent_child_token_issue(principal=principal, scopes=["agent:connect", "agent:report"])
    access_request = _ask(_principal(child.plaintext))
    assert access_request.token_id == child.token.id


def test_nobody_may_ask_for_a_scope_the_root_token_lacks(member, agent):
    narrow_root = agent_token_issue(actor=member, agent=agent, scopes=["agent:connect", "agent:report"])
    agent.permission_mode = mode("no-user-data")
    agent.save(update_fields=["permission_mode"])
    with pytest.raises(InvalidInput) as refused:
        _ask(_principal(narrow_root.plaintext))
    assert refused.value.field == "scopes"
    assert "root token" in refused.value.detail


def test_a_token_without_connect_may_not_ask(principal):
    reporter = agent_child_token_issue(principal=principal, scopes=["agent:report"])
    with pytest.raises(NotPermitted):
        _ask(_principal(reporter.plaintext))


# --- deciding -------------------------------------------------------------------------------------------


def test_approval_grants_from_now_and_is_audited(root, principal, member, agent):
    access_request = _ask(principal)
    before = timezone.now()

    approved = services.access_request_approve(actor=member, request_id=access_request.id, reason="ok for release")

    assert services.access_request_state(approved) == "approved"
    assert before + timedelta(seconds=900) <= approved.expires_at <= timezone.now() + timedelta(seconds=900)
    assert approved.decided_by == member
    [event] = _events("access_request.approved")
    assert event.actor == member.username and event.agent_id == agent.id
    assert event.details["decision_reason"] == "ok for release"
    assert event.details["expires_at"] == approved.expires_at.isoformat()
    assert event.details["granted_seconds"] == 900
    assert _principal(root.plaintext).allowed_scopes >= {GIT}


def test_approval_may_shorten_but_never_lengthen(principal, member):
    access_request = _ask(principal, duration_seconds=600)
    with pytest.raises(InvalidInput) as longer:
        services.access_request_approve(actor=member, request_id=access_request.id, reason="ok", duration_seconds=601)
    assert longer.value.field == "duration_seconds"
    with pytest.raises(InvalidInput):
        services.access_request_approve(actor=member, request_id=access_request.id, reason="ok", duration_seconds=59)

    approved = services.access_request_approve(
        actor=member, request_id=access_request.id, reason="ok", duration_seconds=120
    )
    assert approved.expires_at <= timezone.now() + timedelta(seconds=120)


def test_a_decision_needs_a_reason(principal, member):
    access_request = _ask(principal)
    for decide in (services.access_request_approve, services.access_request_deny):
        with pytest.raises(InvalidInput) as refused:
            decide(actor=member, request_id=access_request.id, reason=" ")
        assert refused.value.field == "reason"
    assert AccessRequest.objects.get(pk=access_request.pk).state == "pending"


def test_deny_then_any_decision_conflicts(principal, member):
    access_request = _ask(principal)
    denied = services.access_request_deny(actor=member, request_id=access_request.id, reason="not now")
    assert services.access_request_state(denied) == "denied"
    assert _events("access_request.denied")[0].details["decision_reason"] == "not now"
    for decide in (services.access_request_approve, services.access_request_deny, services.access_request_revoke):
        with pytest.raises(Conflict):
            decide(actor=member, request_id=access_request.id, reason="again")


def test_revoke_ends_the_grant_on_the_next_request(root, principal, member):
    access_request = _ask(principal)
    services.access_request_approve(actor=member, request_id=access_request.id, reason="ok")
    assert GIT in _principal(root.plaintext).allowed_scopes

    revoked = services.access_request_revoke(actor=member, request_id=access_request.id, reason="done")

    assert services.access_request_state(revoked) == "revoked"
    assert GIT not in _principal(root.plaintext).allowed_scopes
    [event] = _events("access_request.revoked")
    assert event.details["revoke_reason"] == "done"
    with pytest.raises(Conflict):
        services.access_request_revoke(actor=member, request_id=access_request.id, reason="twice")


def test_a_pending_request_cannot_be_revoked(principal, member):
    access_request = _ask(principal)
    with pytest.raises(Conflict):
        services.access_request_revoke(actor=member, request_id=access_request.id, reason="no")


# --- who decides ----------------------------------------------------------------------------------------


def test_admins_decide_any_request(principal, admin_user):
    access_request = _ask(principal)
    assert services.access_request_approve(actor=admin_user, request_id=access_request.id, reason="ok").state == (
        "approved"
    )


def test_owner_may_not_decide_when_only_admins_do(principal, member, settings):
    settings.CODERAUTH_ELEVATION_APPROVERS = "admins"
    access_request = _ask(principal)
    with pytest.raises(NotPermitted):
        services.access_request_approve(actor=member, request_id=access_request.id, reason="ok")
    assert not selectors.access_request_may_decide(user=member, access_request=access_request)


def test_auditors_see_but_never_decide(principal, auditor_user):
    access_request = _ask(principal)
    assert selectors.access_request_get_for(user=auditor_user, request_id=access_request.id).id == access_request.id
    with pytest.raises(NotPermitted):
        services.access_request_deny(actor=auditor_user, request_id=access_request.id, reason="no")


def test_another_member_neither_sees_nor_decides(principal, other_member):
    access_request = _ask(principal)
    with pytest.raises(ObjectNotFound):
        selectors.access_request_get_for(user=other_member, request_id=access_request.id)
    with pytest.raises(ObjectNotFound):
        services.access_request_approve(actor=other_member, request_id=access_request.id, reason="ok")
    assert AccessRequest.objects.get(pk=access_request.pk).state == "pending"


# --- lapsing --------------------------------------------------------------------------------------------


def test_an_approved_grant_lapses_by_time_alone(root, principal, member):
    access_request = _ask(principal)
    approved = services.access_request_approve(actor=member, request_id=access_request.id, reason="ok")
    later = approved.expires_at + timedelta(seconds=1)

    assert services.access_request_state(approved, now=later) == "expired"
    assert services.access_request_time_left(approved, now=later) is None
    assert services.access_request_time_left(approved, now=approved.expires_at - timedelta(seconds=30)) == (
        timedelta(seconds=30)
    )
    _age(approved, expires_at=timezone.now() - timedelta(seconds=1))
    assert GIT not in _principal(root.plaintext).allowed_scopes


def test_expired_is_audited_once_however_often_it_is_read(principal, member):
    access_request = _ask(principal)
    services.access_request_approve(actor=member, request_id=access_request.id, reason="ok")
    _age(access_request, expires_at=timezone.now() - timedelta(seconds=1))

    read = selectors.access_request_get_for(user=member, request_id=access_request.id)
    assert services.access_request_state(read) == "expired"
    list(selectors.access_request_list_for(user=member))
    selectors.access_request_get_for_agent(agent_id=principal.agent_id, request_id=access_request.id)
    assert services.access_requests_expire_due() == 0

    [event] = _events("access_request.expired")
    assert event.details["request_id"] == str(access_request.id)
    assert event.details["was"] == "approved"


def test_a_request_that_lapsed_pending_cannot_be_approved(principal, member, settings):
    access_request = _ask(principal)
    _age(access_request, requested_at=timezone.now() - timedelta(seconds=settings.CODERAUTH_ELEVATION_PENDING_SECONDS))

    with pytest.raises(Conflict) as refused:
        services.access_request_approve(actor=member, request_id=access_request.id, reason="late")

    assert refused.value.extra["state"] == "expired"
    assert AccessRequest.objects.get(pk=access_request.pk).state == "pending"
    assert len(_events("access_request.expired")) == 1  # recorded even though the approval was refused
    assert not _events("access_request.approved")


def test_expire_due_works_in_batches(member, settings):
    for _ in range(3):
        agent = AgentFactory(workspace__owner=member)
        issued = agent_token_issue(actor=member, agent=agent)
        agent.permission_mode = mode("no-user-data")
        agent.save(update_fields=["permission_mode"])
        _age(_ask(_principal(issued.plaintext)), requested_at=timezone.now() - timedelta(days=1))

    assert services.access_requests_expire_due(batch_size=2) == 2
    assert services.access_requests_expire_due(batch_size=2) == 1
    assert services.access_requests_expire_due(batch_size=2) == 0
    assert len(_events("access_request.expired")) == 3


def test_pending_count_counts_what_the_user_may_decide(principal, member, admin_user, auditor_user, settings):
    _ask(principal)
    assert selectors.access_request_pending_count_for(user=member) == 1
    assert selectors.access_request_pending_count_for(user=admin_user) == 1
    assert selectors.access_request_pending_count_for(user=auditor_user) == 0
    assert selectors.access_request_pending_count_for(user=UserFactory()) == 0
    settings.CODERAUTH_ELEVATION_APPROVERS = "admins"
    assert selectors.access_request_pending_count_for(user=member) == 0


def test_active_grants_of_a_workspace(principal, member, agent):
    access_request = _ask(principal)
    assert selectors.access_request_active_grants_for_workspace(workspace=agent.workspace) == []
    services.access_request_approve(actor=member, request_id=access_request.id, reason="ok")
    assert [grant.id for grant in selectors.access_request_active_grants_for_workspace(workspace=agent.workspace)] == [
        access_request.id
    ]


def test_another_agents_request_is_not_found(principal, member):
    access_request = _ask(principal)
    other = AgentFactory(workspace__owner=member)
    with pytest.raises(ObjectNotFound):
        selectors.access_request_get_for_agent(agent_id=other.id, request_id=access_request.id)
    with pytest.raises(ObjectNotFound):
        selectors.access_request_get_for_agent(agent_id=other.id, request_id="not-a-uuid")


# --- webhooks -------------------------------------------------------------------------------------------


def test_no_webhook_rows_without_a_url(principal, member, settings):
    settings.CODERAUTH_ELEVATION_WEBHOOK_URL = []
    access_request = _ask(principal)
    services.access_request_approve(actor=member, request_id=access_request.id, reason="ok")
    assert not WebhookDelivery.objects.exists()


def test_each_request_and_decision_writes_one_row_per_url(principal, member, agent, settings):
    settings.CODERAUTH_ELEVATION_WEBHOOK_URL = ["https://hooks.example.com/a", "https://hooks.example.com/b"]
    access_request = _ask(principal)
    services.access_request_approve(actor=member, request_id=access_request.id, reason="ok for release")

    rows = list(WebhookDelivery.objects.order_by("id"))
    assert [(row.event, row.url) for row in rows] == [
        ("access_request.created", "https://hooks.example.com/a"),
        ("access_request.created", "https://hooks.example.com/b"),
        ("access_request.approved", "https://hooks.example.com/a"),
        ("access_request.approved", "https://hooks.example.com/b"),
    ]
    created = json.loads(rows[0].body)
    assert created["text"] == (
        f"agent {agent.workspace.name}/{agent.name} asks for agent:gitsshkey for 15 min: push release tag"
    )
    assert created["request"]["state"] == "pending" and created["request"]["owner"] == member.username
    approved = json.loads(rows[2].body)
    assert approved["actor"] == member.username
    assert approved["decision_reason"] == "ok for release"
    assert approved["request"]["expires_at"] is not None
    assert "cda_" not in rows[0].body + rows[2].body  # no token in a notice


def test_a_refused_decision_writes_no_webhook_row(principal, member, settings):
    settings.CODERAUTH_ELEVATION_WEBHOOK_URL = ["https://hooks.example.com/a"]
    access_request = _ask(principal)
    services.access_request_deny(actor=member, request_id=access_request.id, reason="no")
    count = WebhookDelivery.objects.count()
    with pytest.raises(Conflict):
        services.access_request_approve(actor=member, request_id=access_request.id, reason="changed my mind")
    assert WebhookDelivery.objects.count() == count
