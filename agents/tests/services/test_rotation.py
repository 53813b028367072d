"""Rotation of child tokens and reuse detection (docs/concepts.md, "Rotation and theft detection")."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from agents.authentication import AgentTokenAuthentication
from agents.models import AgentToken
from agents.services.principals import agent_principal_resolve
from agents.services.retention import dead_tokens_purge_batch
from agents.services.rotation import agent_token_rotate
from agents.services.tokens import agent_child_token_issue, agent_token_issue, agent_token_revoke_by_agent
from audit.models import AuditEvent
from core.exceptions import InvalidInput
from tests.helpers.factories import AgentFactory, UserFactory
from tests.helpers.locks import wait_for_lock_waiters

pytestmark = pytest.mark.django_db


def _principal(plaintext: str):
    """Authenticate a token the way a request would (None: refused)."""
    return agent_principal_resolve(raw_token=plaintext)


def _authenticated(plaintext: str):
    request = type("Request", (), {"headers": {"Authorization": f"Bearer {plaintext}"}})()
    return AgentTokenAuthentication().authenticate(request)[0]


@pytest.fixture
def tree(agent, member):
    """The MCP server's shape: a user-issued root, a renewal token under it, a working token under that."""
    root = agent_token_issue(actor=member, agent=agent, name="root")
    renewal = agent_child_token_issue(principal=_authenticated(root.plaintext), name="renewal")
    working = agent_child_token_issue(
        principal=_authenticated(renewal.plaintext), scopes=["agent:connect"], lifetime_seconds=900, name="working"
    )
    return {"root": root, "renewal": renewal, "working": working}


def _reload(issued) -> AgentToken:
    return AgentToken.objects.get(pk=issued.token.pk)


def test_rotation_issues_a_sibling_that_keeps_the_subtree(tree):
    """The successor stands where the old token stood, with a new secret; the working token lives on under it."""
    renewal = tree["renewal"]

    successor = agent_token_rotate(principal=_authenticated(renewal.plaintext))

    new, old = successor.token, _reload(renewal)
    assert new.pk != old.pk and new.digest != old.digest and successor.plaintext != renewal.plaintext
    assert (new.agent_id, new.parent_id, new.name, new.depth) == (old.agent_id, old.parent_id, "renewal", 1)
    assert (list(new.scopes), new.expires_at) == (list(old.scopes), old.expires_at)
    assert old.is_revoked() and old.rotated_to_id == new.pk
    assert _reload(tree["working"]).parent_id == new.pk
    working = _principal(tree["working"].plaintext)
    assert working is not None and working.parent_id == new.pk
    assert _principal(successor.plaintext) is not None
    assert _principal(tree["root"].plaintext) is not None


def test_rotation_is_audited_with_ids_and_hints_only(tree, agent):
    renewal = tree["renewal"]

    successor = agent_token_rotate(principal=_authenticated(renewal.plaintext))

    event = AuditEvent.objects.get(action="agent_token.rotated")
    assert (event.actor_type, event.actor, event.agent_id) == ("agent", str(agent.id), agent.id)
    assert event.details["token_id"] == str(renewal.token.pk)
    assert event.details["token_hint"] == renewal.token.hint
    assert event.details["new_token_id"] == str(successor.token.pk)
    assert event.details["new_token_hint"] == successor.token.hint
    assert event.details["children_moved"] == 1
    assert successor.plaintext not in str(event.details) and renewal.plaintext not in str(event.details)
    assert not AuditEvent.objects.filter(action="agent_token.revoked").exists()


def test_a_token_issued_by_a_user_does_not_rotate(tree):
    with pytest.raises(InvalidInput, match="issuing a new one"):
        agent_token_rotate(principal=_authenticated(tree["root"].plaintext))
    assert AgentToken.objects.count() == 3
    assert not AuditEvent.objects.filter(action="agent_token.rotated").exists()


def test_rotated_out_token_is_refused(tree):
    renewal = tree["renewal"]
    agent_token_rotate(principal=_authenticated(renewal.plaintext))

    assert _principal(renewal.plaintext) is None


def test_presenting_a_rotated_out_token_revokes_the_whole_lineage(tree):
    """Whoever rotates first (the MCP server or a thief), the other one presenting the old token kills the
    successor and every working token: a stolen renewal token is noticed the next time either side uses it,
    and is then useless to both. The root is the agent's own user-issued credential and stays.
    (agents/tests/apis/test_rotation.py plays both orders over HTTP.)"""
    renewal = tree["renewal"]
    successor = agent_token_rotate(principal=_authenticated(renewal.plaintext))
    # The one who rotated mints a working token under the successor, as the MCP server does.
    fresh_working = agent_child_token_issue(principal=_authenticated(successor.plaintext), lifetime_seconds=900)

    assert _principal(renewal.plaintext) is None

    for issued in (successor, fresh_working, tree["working"]):
        assert _principal(issued.plaintext) is None, issued.token.name
        assert _reload(issued).is_revoked()
    assert _principal(tree["root"].plaintext) is not None
    event = AuditEvent.objects.get(action="agent_token.reuse_detected")
    assert event.details["token_id"] == str(renewal.token.pk)
    assert event.details["token_hint"] == renewal.token.hint
    assert event.details["reason"] == "rotated_out_token_presented"
    assert event.details["successor_ids"] == [str(successor.token.pk)]
    assert set(event.details["revoked_ids"]) == {
        str(successor.token.pk),
        str(fresh_working.token.pk),
        str(tree["working"].token.pk),
    }
    assert event.actor_type == "agent"


def test_an_old_generation_revokes_the_newest_one(tree):
    """Three generations later, the first rotated-out token still reaches the live end of the lineage."""
    current = tree["renewal"]
    generations = [current]
    for _ in range(3):
        current = agent_token_rotate(principal=_authenticated(current.plaintext))
        generations.append(current)

    assert _principal(generations[0].plaintext) is None

    assert _reload(generations[-1]).is_revoked()
    assert _reload(tree["working"]).is_revoked()
    event = AuditEvent.objects.get(action="agent_token.reuse_detected")
    assert event.details["successor_ids"] == [str(issued.token.pk) for issued in generations[1:]]


def test_reuse_detected_is_audited_once(tree):
    """A thief replaying the old token in a loop gets one reuse row; after that there is nothing left to revoke
    and the token is refused like any revoked one."""
    renewal = tree["renewal"]
    agent_token_rotate(principal=_authenticated(renewal.plaintext))

    for _ in range(3):
        assert _principal(renewal.plaintext) is None

    assert AuditEvent.objects.filter(action="agent_token.reuse_detected").count() == 1
    rejected = AuditEvent.objects.filter(action="agent_token.rejected")
    assert rejected.exists()
    assert {event.details["token_id"] for event in rejected} == {str(renewal.token.pk)}


def test_a_concurrent_rotation_of_the_same_token_counts_as_reuse(tree):
    """Two requests authenticated with one token both ask to rotate it: the one that gets the tree lock second
    finds it rotated (a fresh read after the lock) and revokes the lineage instead of making a second heir."""
    principal = _authenticated(tree["renewal"].plaintext)
    winner = agent_token_rotate(principal=principal)

    assert agent_token_rotate(principal=principal) is None

    assert _reload(winner).is_revoked()
    assert AgentToken.objects.filter(rotated_from__isnull=False).count() == 1
    event = AuditEvent.objects.get(action="agent_token.reuse_detected")
    assert event.details["reason"] == "rotated_concurrently"
    assert AuditEvent.objects.filter(action="agent_token.rotated").count() == 1


def test_a_token_revoked_while_waiting_is_not_rotated(tree, agent):
    principal = _authenticated(tree["renewal"].plaintext)
    root = _authenticated(tree["root"].plaintext)
    agent_token_revoke_by_agent(principal=root, token_id=tree["renewal"].token.pk)

    assert agent_token_rotate(principal=principal) is None

    assert AgentToken.objects.filter(agent=agent).count() == 3
    assert not AuditEvent.objects.filter(action__in=["agent_token.rotated", "agent_token.reuse_detected"]).exists()


def test_rotation_is_not_held_to_the_live_children_cap(tree, settings):
    """Rotation replaces a live token, it adds none."""
    live_children = AgentToken.objects.filter(parent__isnull=False, revoked_at__isnull=True).count()
    settings.CODERAUTH_AGENT_MAX_LIVE_CHILD_TOKENS = live_children

    successor = agent_token_rotate(principal=_authenticated(tree["renewal"].plaintext))

    assert _principal(successor.plaintext) is not None
    assert AgentToken.objects.filter(parent__isnull=False, revoked_at__isnull=True).count() == live_children


def test_the_agent_still_revokes_tokens_of_a_lineage(tree):
    root = _authenticated(tree["root"].plaintext)
    successor = agent_token_rotate(principal=_authenticated(tree["renewal"].plaintext))

    revoked = agent_token_revoke_by_agent(principal=root, token_id=successor.token.pk)

    assert set(revoked) == {str(successor.token.pk), str(tree["working"].token.pk)}
    assert agent_token_revoke_by_agent(principal=root, token_id=tree["renewal"].token.pk) == []


def test_reuse_detection_lasts_until_the_old_token_is_purged(tree):
    """Purge deletes dead tokens; `rotated_to` is SET_NULL, so removing an old generation breaks nothing. While
    the old token exists, presenting it is reuse; once purged, it is an unknown token and nothing is written."""
    renewal = tree["renewal"]
    successor = agent_token_rotate(principal=_authenticated(renewal.plaintext))
    long_ago = timezone.now() - timedelta(days=45)
    AgentToken.objects.filter(pk=renewal.token.pk).update(created_at=long_ago - timedelta(days=1), revoked_at=long_ago)

    purged = dead_tokens_purge_batch(kind="agent_token", dead_before=timezone.now() - timedelta(days=30), batch_size=10)

    assert purged == 1
    assert not AgentToken.objects.filter(pk=renewal.token.pk).exists()
    events_before = AuditEvent.objects.count()
    assert _principal(renewal.plaintext) is None
    assert AuditEvent.objects.count() == events_before
    assert _principal(successor.plaintext) is not None
    assert _principal(tree["working"].plaintext) is not None


def test_purging_a_middle_generation_ends_the_lineage_there(tree):
    """With its successor purged, the old token is just a revoked one: refused, and the live end is untouched."""
    first = tree["renewal"]
    middle = agent_token_rotate(principal=_authenticated(first.plaintext))
    newest = agent_token_rotate(principal=_authenticated(middle.plaintext))
    long_ago = timezone.now() - timedelta(days=45)
    AgentToken.objects.filter(pk=middle.token.pk).update(created_at=long_ago - timedelta(days=1), revoked_at=long_ago)
    dead_tokens_purge_batch(kind="agent_token", dead_before=timezone.now() - timedelta(days=30), batch_size=10)

    assert _reload(first).rotated_to_id is None
    assert _principal(first.plaintext) is None

    assert _principal(newest.plaintext) is not None
    assert not AuditEvent.objects.filter(action="agent_token.reuse_detected").exists()


def test_no_plaintext_in_the_logs(tree, caplog):
    renewal = tree["renewal"]
    with caplog.at_level(logging.DEBUG):
        successor = agent_token_rotate(principal=_authenticated(renewal.plaintext))
        _principal(renewal.plaintext)

    assert renewal.token.hint in caplog.text
    assert renewal.plaintext not in caplog.text and successor.plaintext not in caplog.text


@pytest.mark.django_db(transaction=True)
def test_two_rotations_racing_leave_no_second_heir(transactional_db):
    """Two requests rotate one token at once: the second waits for the tree lock, then reads the token afresh,
    finds it rotated and revokes the lineage. Without the fresh read both would commit a successor."""
    owner = UserFactory()
    agent = AgentFactory(workspace__owner=owner)
    root = agent_token_issue(actor=owner, agent=agent, name="root")
    renewal = agent_child_token_issue(principal=_authenticated(root.plaintext), name="renewal")
    principal = _authenticated(renewal.plaintext)

    rotated_inside = threading.Event()
    release_first = threading.Event()
    outcome: dict[str, object] = {}

    def first() -> None:
        try:
            with transaction.atomic():
                outcome["first"] = agent_token_rotate(principal=principal)
                rotated_inside.set()
                release_first.wait(timeout=30)
        finally:
            rotated_inside.set()
            connection.close()

    def second() -> None:
        try:
            outcome["second"] = agent_token_rotate(principal=principal)
        finally:
            connection.close()

    first_thread = threading.Thread(target=first)
    first_thread.start()
    assert rotated_inside.wait(timeout=30)
    second_thread = threading.Thread(target=second)
    second_thread.start()
    try:
        _wait_until_a_backend_waits_for_a_lock()
    finally:
        release_first.set()
        first_thread.join(timeout=30)
        second_thread.join(timeout=30)

    assert outcome["first"] is not None and outcome["second"] is None, outcome
    assert _reload(outcome["first"]).is_revoked()
    assert AgentToken.objects.filter(agent=agent, revoked_at__isnull=True).count() == 1  # the root
    event = AuditEvent.objects.get(action="agent_token.reuse_detected")
    assert event.details["reason"] == "rotated_concurrently"


def _wait_until_a_backend_waits_for_a_lock() -> None:
    """Another session is blocked on a lock (polled on the lock table, not slept on)."""
    wait_for_lock_waiters(1)
