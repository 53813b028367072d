"""The workspace page stays bounded: live tokens by default, a per-agent cap, the newest app statuses only.

An MCP server mints a 15-minute token about every 10 minutes, so an agent gathers ~144 tokens a day.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from agents.models import AgentToken, AppStatus
from agents.services.tokens import agent_token_issue, agent_token_revoke
from tests.helpers.factories import AgentFactory
from tests.helpers.pages import count_queries
from ui.selectors import STATUSES_SHOWN_PER_AGENT, TOKENS_SHOWN_PER_AGENT

pytestmark = pytest.mark.django_db


def _tokens(agent, *, count: int, state: str = "live", prefix: str = "t") -> None:
    """`count` tokens in one state, one minute apart, named `<prefix>-00` (oldest) onwards."""
    now = timezone.now()
    start = now - timedelta(minutes=count + 1)
    lifetime = {"live": timedelta(days=1), "expired": timedelta(minutes=1), "revoked": timedelta(days=1)}[state]
    AgentToken.objects.bulk_create(
        AgentToken(
            agent=agent,
            name=f"{prefix}-{index:02d}",
            digest=secrets.token_hex(32),
            hint=f"cda_…{index:04d}",
            scopes=["agent:connect"],
            created_at=start + timedelta(minutes=index),
            expires_at=start + timedelta(minutes=index) + lifetime,
            revoked_at=now if state == "revoked" else None,
        )
        for index in range(count)
    )


def _statuses(agent, *, count: int) -> None:
    for index in range(count):
        AppStatus.objects.create(agent=agent, app_slug="coder", state="working", message=f"step-{index:02d}")


def _page(workspace, **params) -> tuple[str, dict]:
    return reverse("ui:workspace-detail", args=[workspace.pk]), params


def _revoke_buttons(body: str) -> int:
    return body.count(">Revoke</button>")


@pytest.fixture
def mixed_tokens(agent, member):
    """One live, one revoked and one expired token on the agent."""
    agent_token_issue(actor=member, agent=agent, name="live-one")
    revoked = agent_token_issue(actor=member, agent=agent, name="revoked-one").token
    agent_token_revoke(actor=member, token=revoked)
    _tokens(agent, count=1, state="expired", prefix="expired-one")
    return agent


def test_revoked_and_expired_tokens_are_hidden_by_default(admin_web, workspace, mixed_tokens):
    url, _ = _page(workspace)
    body = admin_web.get(url).content.decode()
    assert "live-one" in body
    assert "revoked-one" not in body and "expired-one" not in body
    assert "2 revoked or expired tokens not shown" in body
    assert f'href="?tokens=all#agent-{mixed_tokens.pk}">Show all tokens</a>' in body
    assert _revoke_buttons(body) == 1


def test_show_all_tokens_lists_revoked_and_expired_without_revoke_buttons(admin_web, workspace, mixed_tokens):
    url, params = _page(workspace, tokens="all")
    body = admin_web.get(url, params).content.decode()
    assert "live-one" in body and "revoked-one" in body and "expired-one-00" in body
    assert "All 3 tokens, revoked and expired included" in body
    assert ">revoked <time" in body and ">expired <time" in body
    assert f'href="?#agent-{mixed_tokens.pk}">Show live tokens only</a>' in body
    # Only the live token can still be revoked; the others are shown for the record.
    assert _revoke_buttons(body) == 1
    assert 'name="tokens" value="all"' in body


def test_an_agent_with_only_dead_tokens_says_so(admin_web, workspace, agent):
    _tokens(agent, count=3, state="expired")
    body = admin_web.get(reverse("ui:workspace-detail", args=[workspace.pk])).content.decode()
    assert "No live tokens." in body
    assert "3 revoked or expired tokens not shown" in body


def test_live_tokens_are_capped_per_agent_with_a_count_of_the_rest(admin_web, workspace, agent):
    _tokens(agent, count=TOKENS_SHOWN_PER_AGENT + 5)
    body = admin_web.get(reverse("ui:workspace-detail", args=[workspace.pk])).content.decode()
    assert _revoke_buttons(body) == TOKENS_SHOWN_PER_AGENT
    newest, oldest_shown, first_hidden = TOKENS_SHOWN_PER_AGENT + 4, 5, 4
    assert f"t-{newest:02d}" in body and f"t-{oldest_shown:02d}" in body and f"t-{first_hidden:02d}" not in body
    assert f"Showing the newest {TOKENS_SHOWN_PER_AGENT} of {TOKENS_SHOWN_PER_AGENT + 5} live tokens" in body
    assert "<strong>5 more</strong>" in body
    assert reverse("agents:agent-token-list", args=[agent.pk]) in body


def test_show_all_is_capped_too(admin_web, workspace, agent):
    _tokens(agent, count=150, state="expired")
    url, params = _page(workspace, tokens="all")
    body = admin_web.get(url, params).content.decode()
    assert body.count(">expired <time") == TOKENS_SHOWN_PER_AGENT
    assert f"Showing the newest {TOKENS_SHOWN_PER_AGENT} of 150 tokens" in body
    assert f"<strong>{150 - TOKENS_SHOWN_PER_AGENT} more</strong>" in body


def test_only_the_newest_app_statuses_are_shown(admin_web, workspace, agent):
    _statuses(agent, count=30)
    body = admin_web.get(reverse("ui:workspace-detail", args=[workspace.pk])).content.decode()
    shown = re.findall(r"step-(\d\d)", body)
    assert shown == [f"{index:02d}" for index in range(29, 29 - STATUSES_SHOWN_PER_AGENT, -1)]


@pytest.mark.parametrize("tokens", ["", "all"])
def test_workspace_page_query_count_does_not_grow_with_agents_tokens_or_statuses(admin_web, workspace, tokens):
    """1 agent with 1 token and 1 status costs as many queries as 6 agents with 120 tokens and 30 statuses each."""
    url, params = _page(workspace, tokens=tokens)
    first = AgentFactory(workspace=workspace)
    _tokens(first, count=1)
    _statuses(first, count=1)
    few = count_queries(admin_web, url, params)
    for agent in [first, *AgentFactory.create_batch(5, workspace=workspace)]:
        _tokens(agent, count=40, prefix="live")
        _tokens(agent, count=40, state="revoked", prefix="revoked")
        _tokens(agent, count=40, state="expired", prefix="expired")
        _statuses(agent, count=30)
    many = count_queries(admin_web, url, params)
    assert many == few


def test_revoke_button_on_the_page_revokes_the_token(member_web, workspace, agent, member):
    issued = agent_token_issue(actor=member, agent=agent, name="to-revoke").token
    body = member_web.get(reverse("ui:workspace-detail", args=[workspace.pk])).content.decode()
    action = reverse("ui:agent-token-revoke", args=[agent.pk, issued.pk])
    assert f'action="{action}"' in body
    response = member_web.post(action)
    assert response.status_code == 302
    assert response["Location"] == reverse("ui:workspace-detail", args=[workspace.pk])
    assert AgentToken.objects.get(pk=issued.pk).revoked_at is not None
    after = member_web.get(response["Location"]).content.decode()
    assert "Revoked to-revoke" in after
    assert "1 revoked or expired token not shown" in after


def test_revoke_from_the_full_list_returns_to_it(member_web, workspace, agent, member):
    issued = agent_token_issue(actor=member, agent=agent, name="to-revoke").token
    response = member_web.post(reverse("ui:agent-token-revoke", args=[agent.pk, issued.pk]), {"tokens": "all"})
    assert response["Location"] == reverse("ui:workspace-detail", args=[workspace.pk]) + "?tokens=all"
    assert AgentToken.objects.get(pk=issued.pk).revoked_at is not None


def test_recent_events_say_what_a_user_data_read_was(member_web, workspace, agent, agent_token):
    """A read has no scope to name: the row says what was read instead of "… needs" with nothing after it."""
    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Bearer {agent_token}")
    assert reader.get(reverse("agents:agent-gitsshkey")).status_code == 200
    body = member_web.get(reverse("ui:workspace-detail", args=[workspace.pk])).content.decode()
    assert "read <code>gitsshkey</code>" in body
    assert "needs <code></code>" not in body
