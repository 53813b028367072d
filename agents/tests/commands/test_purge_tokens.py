"""manage.py purge_tokens: tokens dead for long enough go, with an audit row per batch; live ones never do."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from agents.models import AgentToken, UserToken
from agents.services.tokens import agent_token_issue, agent_token_revoke
from agents.services.users import user_token_issue
from audit.models import AuditEvent
from tests.helpers.clients import client_for_agent_token

pytestmark = pytest.mark.django_db

LONG_AGO = timedelta(days=45)


def _purge(*args: str) -> str:
    out = StringIO()
    call_command("purge_tokens", *args, stdout=out)
    return out.getvalue()


def _age(token, *, revoked: bool = False, expired: bool = False) -> None:
    """Move a token's death LONG_AGO into the past (created before it, so the model's checks hold)."""
    then = timezone.now() - LONG_AGO
    fields = {"created_at": then - timedelta(days=1)}
    if revoked:
        fields["revoked_at"] = then
    if expired:
        fields["expires_at"] = then
    type(token).objects.filter(pk=token.pk).update(**fields)


@pytest.fixture
def tokens(agent, member):
    live = agent_token_issue(actor=member, agent=agent, name="live")
    recently_revoked = agent_token_issue(actor=member, agent=agent, name="recent")
    agent_token_revoke(actor=member, token=recently_revoked.token)
    old_revoked = agent_token_issue(actor=member, agent=agent, name="old-revoked")
    _age(old_revoked.token, revoked=True)
    old_expired = agent_token_issue(actor=member, agent=agent, name="old-expired")
    _age(old_expired.token, expired=True)
    old_session = user_token_issue(user=member, name="old-session")
    _age(old_session.token, expired=True)
    live_user = user_token_issue(user=member, name="live-user")
    return {"live": live, "recent": recently_revoked, "live_user": live_user}


def test_only_tokens_dead_longer_than_the_cutoff_go(tokens):
    output = _purge()

    assert set(AgentToken.objects.values_list("name", flat=True)) == {"live", "recent"}
    assert set(UserToken.objects.values_list("name", flat=True)) == {"live-user"}
    assert (
        client_for_agent_token(tokens["live"].plaintext).get("/api/v2/workspaceagents/me/manifest").status_code == 200
    )
    assert "agent tokens: 2 deleted." in output
    assert "user tokens: 1 deleted." in output


def test_each_batch_is_audited_without_secrets(tokens):
    _purge("--batch-size", "1")

    agent_rows = AuditEvent.objects.filter(action="agent_token.purged")
    assert [row.details["count"] for row in agent_rows] == [1, 1]
    assert AuditEvent.objects.get(action="user_token.purged").details["count"] == 1
    assert all(row.actor_type == "system" for row in agent_rows)


def test_dry_run_deletes_nothing(tokens):
    output = _purge("--dry-run")

    assert "2 agent tokens, 1 user tokens" in output
    assert AgentToken.objects.count() == 4
    assert not AuditEvent.objects.filter(action__endswith=".purged").exists()


def test_a_dead_parent_takes_its_dead_children(agent, member):
    parent = agent_token_issue(actor=member, agent=agent, name="parent")
    child = AgentToken.objects.create(
        agent=agent,
        name="child",
        digest="c" * 64,
        hint="cda_…child",
        scopes=["agent:connect"],
        expires_at=parent.token.expires_at,
        parent=parent.token,
    )
    agent_token_revoke(actor=member, token=parent.token)
    _age(parent.token, revoked=True)
    _age(child, revoked=True)

    _purge()

    assert not AgentToken.objects.filter(pk__in=[parent.token.pk, child.pk]).exists()


def test_nothing_to_purge_writes_no_audit_row(agent_token):
    _purge()
    assert not AuditEvent.objects.filter(action__endswith=".purged").exists()


@pytest.mark.parametrize("args", [["--older-than-days", "0"], ["--batch-size", "0"]])
def test_bad_arguments_are_refused(args):
    with pytest.raises(CommandError):
        _purge(*args)
