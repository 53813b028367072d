"""agent_child_token_issue's caps: chain depth recorded on each token, and refusals that leave no trace."""

from __future__ import annotations

import pytest

from agents.models import AgentToken
from agents.services.principals import agent_principal_resolve
from agents.services.tokens import agent_child_token_issue, agent_token_issue, agent_token_revoke
from audit.models import AuditEvent
from core.exceptions import Conflict, InvalidInput

pytestmark = pytest.mark.django_db


def _principal(plaintext: str):
    return agent_principal_resolve(raw_token=plaintext)


def test_user_issued_tokens_are_depth_zero_and_each_child_one_deeper(member, agent):
    root = agent_token_issue(actor=member, agent=agent)
    child = agent_child_token_issue(principal=_principal(root.plaintext))
    grandchild = agent_child_token_issue(principal=_principal(child.plaintext))
    depths = {token.pk: token.depth for token in AgentToken.objects.filter(agent=agent)}
    assert depths == {root.token.pk: 0, child.token.pk: 1, grandchild.token.pk: 2}


def test_depth_cap_at_the_limit_and_one_past(member, agent, settings):
    settings.CODERAUTH_AGENT_TOKEN_MAX_DEPTH = 2
    root = agent_token_issue(actor=member, agent=agent)
    child = agent_child_token_issue(principal=_principal(root.plaintext))
    at_limit = agent_child_token_issue(principal=_principal(child.plaintext))
    assert at_limit.token.depth == 2

    with pytest.raises(Conflict) as refused:
        agent_child_token_issue(principal=_principal(at_limit.plaintext))
    assert refused.value.extra == {"limit": 2, "code": "token_depth"}


def test_a_refused_mint_creates_nothing_and_audits_nothing(member, agent, settings):
    """The 409 is the answer: no token row, no agent_token.issued row."""
    settings.CODERAUTH_AGENT_MAX_LIVE_CHILD_TOKENS = 1
    principal = _principal(agent_token_issue(actor=member, agent=agent).plaintext)
    agent_child_token_issue(principal=principal)
    tokens_before = AgentToken.objects.count()
    events_before = AuditEvent.objects.count()

    with pytest.raises(Conflict) as refused:
        agent_child_token_issue(principal=principal)

    assert refused.value.extra == {"limit": 1, "code": "live_child_tokens"}
    assert AgentToken.objects.count() == tokens_before
    assert AuditEvent.objects.count() == events_before


def test_a_revoked_parent_is_refused_as_revoked_even_at_the_cap(member, agent, settings):
    """Revocation is checked first: a dead parent hears that it is dead, not that the tree is full."""
    settings.CODERAUTH_AGENT_MAX_LIVE_CHILD_TOKENS = 0
    root = agent_token_issue(actor=member, agent=agent)
    principal = _principal(root.plaintext)
    agent_token_revoke(actor=member, token=root.token)
    with pytest.raises(InvalidInput, match="revoked"):
        agent_child_token_issue(principal=principal)
