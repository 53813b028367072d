"""POST workspaceagents/me/tokens/rotate: a child token swaps itself for a successor; the old one is dead."""

from __future__ import annotations

import pytest
from django.urls import reverse

from agents.models import AgentToken
from agents.services.tokens import agent_token_issue, agent_token_revoke
from audit.models import AuditEvent
from tests.helpers.clients import client_for_agent_token
from tests.helpers.responses import assert_status

pytestmark = pytest.mark.django_db


def _mint_child(client, **body) -> dict:
    response = client.post(reverse("agents:agent-child-token"), body, format="json")
    assert_status(response, 201)
    return response.json()


def _rotate(plaintext: str):
    return client_for_agent_token(plaintext).post(reverse("agents:agent-token-rotate"))


def test_rotation_answers_the_successor_like_a_child_mint(agent_client, agent):
    renewal = _mint_child(agent_client, name="renewal")

    response = _rotate(renewal["token"])

    assert_status(response, 201)
    body = response.json()
    assert set(body) == set(_mint_child(agent_client))
    assert body["id"] != renewal["id"] and body["token"] != renewal["token"]
    assert (body["parent_id"], body["scopes"], body["expires_at"]) == (
        renewal["parent_id"],
        renewal["scopes"],
        renewal["expires_at"],
    )
    assert body["agent_id"] == str(agent.id)
    assert "no-store" in response["Cache-Control"]
    assert_status(client_for_agent_token(body["token"]).get(reverse("agents:agent-manifest")), 200)


def test_rotation_keeps_the_working_tokens(agent_client):
    renewal = _mint_child(agent_client, name="renewal")
    working = _mint_child(client_for_agent_token(renewal["token"]), scopes=["agent:connect"], lifetime_seconds=900)

    successor = _rotate(renewal["token"]).json()

    assert_status(client_for_agent_token(working["token"]).get(reverse("agents:agent-manifest")), 200)
    assert str(AgentToken.objects.get(pk=working["id"]).parent_id) == successor["id"]


def test_a_token_issued_by_a_user_is_refused(agent_client):
    response = agent_client.post(reverse("agents:agent-token-rotate"))

    assert_status(response, 400)
    assert "issuing a new one" in response.json()["detail"]
    assert AgentToken.objects.count() == 1


def test_rotated_out_token_is_refused(agent_client, agent, member):
    """The old token gets exactly the answer of any revoked token: no oracle tells a thief it was rotated out."""
    renewal = _mint_child(agent_client, name="renewal")
    revoked = agent_token_issue(actor=member, agent=agent, name="revoked")
    agent_token_revoke(actor=member, token=revoked.token)
    assert_status(_rotate(renewal["token"]), 201)

    old = client_for_agent_token(renewal["token"]).get(reverse("agents:agent-manifest"))
    plain = client_for_agent_token(revoked.plaintext).get(reverse("agents:agent-manifest"))

    assert_status(old, 401)
    assert old.json() == plain.json()
    assert old["WWW-Authenticate"] == plain["WWW-Authenticate"]


@pytest.mark.parametrize("first", ["thief", "holder"])
def test_presenting_a_rotated_out_token_revokes_the_whole_lineage(agent_client, first):
    """A thief copied the MCP server's renewal token. If the thief rotates first, the server's next rotation
    with the old token kills the thief's successor and working tokens; if the server rotates first, the thief's
    first use of the old token kills the server's successor and working tokens (the server then starts again
    from the agent's own token). Either way both lose the lineage, the agent's user-issued token stays, and
    the theft is recorded once."""
    renewal = _mint_child(agent_client, name="renewal")
    old_working = _mint_child(client_for_agent_token(renewal["token"]), scopes=["agent:connect"])
    successor = _rotate(renewal["token"]).json()
    new_working = _mint_child(client_for_agent_token(successor["token"]), scopes=["agent:connect"])

    if first == "thief":
        late = _rotate(renewal["token"])  # the MCP server's scheduled rotation
    else:
        late = client_for_agent_token(renewal["token"]).get(reverse("agents:agent-manifest"))  # the thief

    assert_status(late, 401)
    for token in (successor["token"], new_working["token"], old_working["token"]):
        assert_status(client_for_agent_token(token).get(reverse("agents:agent-manifest")), 401)
    assert_status(agent_client.get(reverse("agents:agent-manifest")), 200)
    assert AuditEvent.objects.filter(action="agent_token.reuse_detected").count() == 1


def test_reuse_detected_is_audited_once(agent_client):
    renewal = _mint_child(agent_client, name="renewal")
    assert_status(_rotate(renewal["token"]), 201)

    for _ in range(3):
        assert_status(_rotate(renewal["token"]), 401)

    assert AuditEvent.objects.filter(action="agent_token.reuse_detected").count() == 1


def test_the_successor_costs_one_query_on_the_hot_path(agent_client, django_assert_max_num_queries):
    """The hot path stays one statement for a token that came from a rotation (its lineage is read only when
    a rotated-out token is refused)."""
    renewal = _mint_child(agent_client, name="renewal")
    successor = client_for_agent_token(_rotate(renewal["token"]).json()["token"])
    successor.get(reverse("agents:agent-manifest"))

    with django_assert_max_num_queries(1):
        assert_status(successor.get(reverse("agents:agent-manifest")), 200)
