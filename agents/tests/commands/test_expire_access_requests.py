"""manage.py expire_access_requests: each lapsed access request gets its audit row once, live ones none."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from agents.models import AccessRequest
from agents.services.elevation import access_request_approve, access_request_create
from agents.services.principals import agent_principal_resolve
from agents.services.tokens import agent_token_issue
from audit.models import AuditEvent
from tests.helpers.factories import AgentFactory, mode

pytestmark = pytest.mark.django_db


def _expire(*args: str) -> str:
    out = StringIO()
    call_command("expire_access_requests", *args, stdout=out)
    return out.getvalue()


def _request(owner) -> AccessRequest:
    agent = AgentFactory(workspace__owner=owner)
    issued = agent_token_issue(actor=owner, agent=agent)
    agent.permission_mode = mode("no-user-data")
    agent.save(update_fields=["permission_mode"])
    return access_request_create(
        principal=agent_principal_resolve(raw_token=issued.plaintext),
        scopes=["agent:gitsshkey"],
        reason="push release tag",
        duration_seconds=600,
    )


def test_records_each_lapsed_request_once_in_batches(member):
    lapsed_pending = [_request(member) for _ in range(3)]
    AccessRequest.objects.filter(pk__in=[r.pk for r in lapsed_pending]).update(
        requested_at=timezone.now() - timedelta(days=1)
    )
    lapsed_grant = _request(member)
    access_request_approve(actor=member, request_id=lapsed_grant.id, reason="ok")
    AccessRequest.objects.filter(pk=lapsed_grant.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    live = _request(member)

    out = _expire("--batch-size", "2")

    assert "2 recorded so far" in out and "Lapsed access requests recorded: 4." in out
    recorded = AuditEvent.objects.filter(action="access_request.expired")
    assert sorted(event.details["request_id"] for event in recorded) == sorted(
        str(r.id) for r in [*lapsed_pending, lapsed_grant]
    )
    assert str(live.id) not in {event.details["request_id"] for event in recorded}
    assert "recorded: 0." in _expire()
    assert recorded.count() == 4


def test_refuses_a_bad_batch_size():
    with pytest.raises(CommandError):
        _expire("--batch-size", "0")
