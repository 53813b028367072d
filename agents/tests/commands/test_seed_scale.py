"""manage.py seed_scale: the counts asked for, a chain verify_audit accepts, and no seeding beside real data."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from agents.models import AgentToken, Workspace, WorkspaceAgent
from audit.models import AuditEvent
from tests.helpers.factories import UserFactory

pytestmark = pytest.mark.django_db

TINY = ["--workspaces", "5", "--agents", "10", "--tokens", "20", "--events", "200", "--big-workspace-agents", "4"]


def _seed(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("seed_scale", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_a_tiny_seed_has_the_counts_asked_for_and_a_valid_chain():
    out, err = _seed(*TINY)
    assert Workspace.objects.count() == 5
    assert WorkspaceAgent.objects.count() == 10
    assert AgentToken.objects.count() == 20
    assert AuditEvent.objects.count() == 200
    # The crowded workspace holds the asked-for agents; the others share the rest.
    assert sorted(w.agents.count() for w in Workspace.objects.all()) == [1, 1, 2, 2, 4]
    assert "audit events [" in err and "200/200" in err
    assert "Seeded" in out
    verified = StringIO()
    call_command("verify_audit", stdout=verified)
    assert "200" in verified.getvalue()


def test_a_second_seed_appends_to_the_chain_and_it_still_verifies():
    _seed(*TINY, "--no-progress")
    _seed(*TINY, "--no-progress")
    assert AuditEvent.objects.count() == 400
    call_command("verify_audit", stdout=StringIO())


def test_seed_refuses_a_database_holding_real_data_without_force():
    UserFactory(username="alice")
    with pytest.raises(CommandError, match="did not write"):
        _seed(*TINY)
    assert Workspace.objects.count() == 0
    _seed(*TINY, "--force", "--no-progress")
    assert Workspace.objects.count() == 5


def test_seeded_tokens_are_digests_and_no_plaintext_is_printed():
    out, err = _seed(*TINY)
    token = AgentToken.objects.first()
    assert len(token.digest) == 64
    assert "cda_" not in out + err
