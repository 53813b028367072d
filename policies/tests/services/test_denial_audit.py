"""agent.access_denied: a loop of refused agent requests writes at most one row per agent a minute, with the
number of refusals folded into it; every refusal still reaches the log."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connections
from django.urls import reverse

from agents.services.tokens import agent_token_issue
from audit.models import AuditEvent
from tests.helpers.clients import client_for_agent_token
from tests.helpers.factories import AgentFactory, UserFactory, WorkspaceFactory, mode
from tests.helpers.responses import assert_status

GITSSHKEY = "agents:agent-gitsshkey"


def _denials(agent) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="agent.access_denied", agent_id=agent.pk).order_by("id"))


@pytest.fixture
def refused(agent, workspace):
    """The agent's mode refuses user data: every gitsshkey read is a 403."""
    workspace.permission_mode = mode("no-user-data")
    workspace.save(update_fields=["permission_mode"])
    return agent


@pytest.mark.django_db
def test_denials_collapse_to_one_row_a_minute_with_their_count(refused, member, settings, caplog):
    """Regression: a refused agent in a loop wrote one audit row per request (an audit flood). Now the first
    refusal is audited at once, the next ones within the minute are folded, and the first refusal after the
    minute writes the next row, counting the folded ones. Every refusal is logged."""
    client = client_for_agent_token(agent_token_issue(actor=member, agent=refused, name="loop").plaintext)
    for _ in range(5):
        assert_status(client.get(reverse(GITSSHKEY)), 403)
    (first,) = _denials(refused)
    assert first.details["folded"] == 0
    assert len([r for r in caplog.records if "Agent request denied" in r.getMessage()]) == 5

    settings.CODERAUTH_LAST_USED_RESOLUTION = timedelta(0)  # the minute has passed
    assert_status(client.get(reverse(GITSSHKEY)), 403)
    first_again, second = _denials(refused)
    assert second.details["folded"] == 4
    assert second.details["scope"] == "agent:gitsshkey" and second.details["denied_by"] == "permission_mode"


@pytest.mark.django_db
def test_the_limit_is_per_agent_not_per_token(refused, member):
    """Minting a fresh token per attempt does not buy a fresh audit row: the fold is per agent."""
    for number in range(4):
        token = agent_token_issue(actor=member, agent=refused, name=f"t{number}").plaintext
        assert_status(client_for_agent_token(token).get(reverse(GITSSHKEY)), 403)
    assert len(_denials(refused)) == 1


@pytest.mark.django_db
def test_each_agent_has_its_own_minute(refused, member):
    """One noisy agent does not silence another's first refusal."""
    other_agent = AgentFactory(workspace=WorkspaceFactory(owner=UserFactory(), permission_mode=mode("no-user-data")))
    for agent in (refused, other_agent, refused):
        token = agent_token_issue(actor=agent.workspace.owner, agent=agent, name="t").plaintext
        assert_status(client_for_agent_token(token).get(reverse(GITSSHKEY)), 403)
    assert len(_denials(refused)) == 1
    assert len(_denials(other_agent)) == 1


@pytest.mark.django_db
def test_a_lost_fold_state_means_more_rows_never_fewer(refused, member):
    """Should the cache lose an agent's bookkeeping, its next refusal is audited again."""
    client = client_for_agent_token(agent_token_issue(actor=member, agent=refused, name="t").plaintext)
    assert_status(client.get(reverse(GITSSHKEY)), 403)
    cache.clear()
    assert_status(client.get(reverse(GITSSHKEY)), 403)
    assert [event.details["folded"] for event in _denials(refused)] == [0, 0]


def test_parallel_denials_are_each_counted_once(transactional_db, refused, member, settings):
    """Refusals arriving together are folded under a lock: one row, and the next row counts every one of them."""
    cache.clear()
    token = agent_token_issue(actor=member, agent=refused, name="parallel").plaintext
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def refuse() -> None:
        try:
            client = client_for_agent_token(token)
            barrier.wait()
            statuses.append(client.get(reverse(GITSSHKEY)).status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=refuse) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert statuses == [403] * 8
    assert len(_denials(refused)) == 1
    settings.CODERAUTH_LAST_USED_RESOLUTION = timedelta(0)
    assert_status(client_for_agent_token(token).get(reverse(GITSSHKEY)), 403)
    assert _denials(refused)[-1].details["folded"] == 7
    cache.clear()
