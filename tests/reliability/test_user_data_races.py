"""Races on user data over HTTP: git SSH keys regenerated, created on first read and read by an agent;
external-auth links set and read by an agent. Afterwards: no 5xx, one audit event per change, one key per
user equal to the last one the log recorded, and the link holding the last token the log recorded."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.urls import reverse

from agents.models import ExternalAuthLink, ExternalAuthProvider, GitSSHKey
from agents.services.tokens import agent_token_issue
from audit import actions
from audit.models import AuditEvent
from tests.helpers.factories import AgentFactory, UserFactory, WorkspaceFactory, mode
from tests.reliability.harness import (
    SIZES,
    Writes,
    assert_audit_chain_verifies,
    assert_no_server_errors,
    assert_one_event_per_change,
    mixed,
    person,
)

KEY_ACTIONS = (actions.USER_GITSSHKEY_CREATED, actions.USER_GITSSHKEY_REGENERATED)


def _key_owner(event: AuditEvent) -> str:
    """Whose key an event wrote: the user, or the owner whose key an agent's read created."""
    return event.details.get("owner", event.actor)


def _agent_tokens(owner, agent) -> list[str]:
    """A few tokens, so that the full run stays within each token's request budget (CODERAUTH_AGENT_THROTTLE_RATE)."""
    return [agent_token_issue(actor=owner.user, agent=agent, name="race").plaintext for _ in range(4)]


@pytest.mark.parametrize("size", SIZES)
def test_git_ssh_key_race(race, owner, size):
    """Two users' keys regenerated, read (created on the first read) by the users and by an agent, on 20
    threads. No 5xx; one audit event per change; exactly one key per user, the last one the audit log
    recorded in commit order; every key a read returned is one the log recorded."""
    second = person(UserFactory)  # has no key yet: the first reads race to create it
    agent = AgentFactory(workspace=WorkspaceFactory(owner=owner.user, permission_mode=mode("default")))
    agent_tokens = _agent_tokens(owner, agent)
    people = (owner, second)

    def regenerate():
        race.call("ssh.regenerate", "PUT", reverse("agents:user-gitsshkey"), token=race.random.choice(people).token)

    def read():
        race.call("ssh.read", "GET", reverse("agents:user-gitsshkey"), token=race.random.choice(people).token)

    def agent_read():
        race.call("ssh.agent_read", "GET", reverse("agents:agent-gitsshkey"), token=race.random.choice(agent_tokens))

    operations = size.operations
    race.run(mixed(race, [(regenerate, operations), (read, operations), (agent_read, operations)]))

    assert_no_server_errors(race)
    events = assert_one_event_per_change(
        race,
        {
            "ssh.regenerate": Writes(actions.USER_GITSSHKEY_REGENERATED),
            "ssh.read": Writes(actions.USER_GITSSHKEY_CREATED, least=0),
            "ssh.agent_read": Writes(actions.AGENT_USER_DATA_ACCESSED, optional=frozenset(KEY_ACTIONS)),
        },
    )
    for call in race.ops("ssh.regenerate"):
        (event,) = events[call.request_id]
        assert event.details["public_key"] == call.body["public_key"]
    recorded = list(AuditEvent.objects.filter(action__in=KEY_ACTIONS).order_by("id"))
    for someone in people:
        keys = GitSSHKey.objects.filter(user=someone.user)
        assert keys.count() == 1
        theirs = [event for event in recorded if _key_owner(event) == someone.user.username]
        assert keys.get().public_key == theirs[-1].details["public_key"]
    known = {event.details["public_key"] for event in recorded}
    assert {call.body["public_key"] for call in race.ops("ssh.read") + race.ops("ssh.agent_read")} <= known
    assert_audit_chain_verifies()


@pytest.mark.parametrize("size", SIZES)
def test_external_auth_link_race(race, owner, size):
    """A user's link to one provider set again and again (the first ones racing to create it) while an agent
    reads it, on 20 threads. No 5xx; one audit event per change, exactly one of them creating the link; one
    link, holding the token of the last change in the log's commit order; every token read was one set."""
    provider = ExternalAuthProvider.objects.create(id="github", type="github", regex=r"^https://github\.com/")
    agent = AgentFactory(workspace=WorkspaceFactory(owner=owner.user, permission_mode=mode("default")))
    agent_tokens = _agent_tokens(owner, agent)
    link_url = reverse("agents:user-external-auth", args=[provider.id])
    read_url = f"{reverse('agents:agent-external-auth')}?id={provider.id}"
    sent: dict[str, str] = {}
    lock = threading.Lock()

    def link():
        access_token = f"gho_{uuid.uuid4().hex}"
        call = race.call("ext.link", "PUT", link_url, token=owner.token, json={"access_token": access_token})
        with lock:
            sent[call.request_id] = access_token

    def agent_read():
        race.call("ext.agent_read", "GET", read_url, token=race.random.choice(agent_tokens))

    operations = size.operations
    race.run(mixed(race, [(link, operations), (agent_read, operations)]))

    assert_no_server_errors(race)
    assert {call.status for call in race.ops("ext.agent_read")} <= {200, 404}  # 404: not linked yet
    assert_one_event_per_change(
        race,
        {
            "ext.link": Writes(actions.USER_EXTERNAL_AUTH_LINKED),
            "ext.agent_read": Writes(actions.AGENT_USER_DATA_ACCESSED),
        },
    )
    linked = list(AuditEvent.objects.filter(action=actions.USER_EXTERNAL_AUTH_LINKED).order_by("id"))
    assert [event.details["created"] for event in linked].count(True) == 1
    assert ExternalAuthLink.objects.filter(user=owner.user, provider=provider).count() == 1
    final = race.call("ext.final_read", "GET", read_url, token=agent_tokens[0])
    assert final.body["access_token"] == sent[linked[-1].request_id]
    read = {call.body["access_token"] for call in race.ops("ext.agent_read") if call.status == 200}
    assert read <= set(sent.values())
    assert_audit_chain_verifies()
