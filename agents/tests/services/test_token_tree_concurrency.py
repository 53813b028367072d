"""Revoking a parent while a child is being minted must not leave the child alive (docs/concepts.md)."""

from __future__ import annotations

import threading

from django.db import connection, transaction

from agents.authentication import AgentTokenAuthentication
from agents.models import AgentToken
from agents.services.tokens import agent_child_token_issue, agent_token_issue, agent_token_revoke
from core.exceptions import InvalidInput
from tests.helpers.factories import AgentFactory, UserFactory
from tests.helpers.locks import wait_for_lock_waiters


def _principal(plaintext: str):
    request = type("Request", (), {"headers": {"Authorization": f"Bearer {plaintext}"}})()
    return AgentTokenAuthentication().authenticate(request)[0]


def _wait_until_a_backend_waits_for_a_lock() -> None:
    """Another session is blocked on a lock (polled on the lock table, not slept on)."""
    wait_for_lock_waiters(1)


def test_revoke_racing_a_child_mint_still_revokes_the_new_child(transactional_db):
    """A child committed while its parent's revocation waits must be revoked with the subtree.

    The revoke has to see rows committed while it waited; with one statement computing the subtree
    from its starting snapshot, the new child escaped and stayed usable after its parent was revoked.
    """
    owner = UserFactory()
    agent = AgentFactory(workspace__owner=owner)
    root = agent_token_issue(actor=owner, agent=agent, name="root")
    middle = agent_child_token_issue(principal=_principal(root.plaintext), scopes=["agent:connect"])
    middle_principal = _principal(middle.plaintext)

    minted_inside = threading.Event()
    release_mint = threading.Event()
    outcome: dict[str, object] = {}

    def mint() -> None:
        try:
            with transaction.atomic():
                issued = agent_child_token_issue(principal=middle_principal, scopes=["agent:connect"])
                outcome["child_id"] = issued.token.id
                minted_inside.set()
                release_mint.wait(timeout=30)
        except Exception as error:  # noqa: BLE001 - reported to the main thread
            outcome["mint_error"] = error
            minted_inside.set()
        finally:
            connection.close()

    def revoke() -> None:
        try:
            agent_token_revoke(actor=owner, token=AgentToken.objects.get(pk=root.token.pk))
        except Exception as error:  # noqa: BLE001
            outcome["revoke_error"] = error
        finally:
            connection.close()

    minter = threading.Thread(target=mint)
    minter.start()
    assert minted_inside.wait(timeout=30)
    revoker = threading.Thread(target=revoke)
    revoker.start()
    try:
        _wait_until_a_backend_waits_for_a_lock()
    finally:
        release_mint.set()
        minter.join(timeout=30)
        revoker.join(timeout=30)

    assert "mint_error" not in outcome and "revoke_error" not in outcome, outcome
    child = AgentToken.objects.get(pk=outcome["child_id"])
    assert child.revoked_at is not None, "the child minted during the revoke survived its revoked parent"
    assert not AgentToken.objects.filter(agent=agent, revoked_at__isnull=True).exists()


def test_mint_waiting_on_a_revoke_is_refused_once_the_parent_is_revoked(transactional_db):
    """The other order: the revoke holds the tree, the mint waits, then sees the revocation and refuses."""
    owner = UserFactory()
    agent = AgentFactory(workspace__owner=owner)
    root = agent_token_issue(actor=owner, agent=agent, name="root")
    root_principal = _principal(root.plaintext)

    revoked_inside = threading.Event()
    release_revoke = threading.Event()
    outcome: dict[str, object] = {}

    def revoke() -> None:
        try:
            with transaction.atomic():
                agent_token_revoke(actor=owner, token=AgentToken.objects.get(pk=root.token.pk))
                revoked_inside.set()
                release_revoke.wait(timeout=30)
        finally:
            revoked_inside.set()
            connection.close()

    def mint() -> None:
        try:
            agent_child_token_issue(principal=root_principal, scopes=["agent:connect"])
            outcome["minted"] = True
        except InvalidInput as error:
            outcome["refused"] = error.detail
        finally:
            connection.close()

    revoker = threading.Thread(target=revoke)
    revoker.start()
    assert revoked_inside.wait(timeout=30)
    minter = threading.Thread(target=mint)
    minter.start()
    try:
        _wait_until_a_backend_waits_for_a_lock()
    finally:
        release_revoke.set()
        revoker.join(timeout=30)
        minter.join(timeout=30)

    assert "minted" not in outcome, outcome
    assert "revoked" in outcome["refused"]
    assert AgentToken.objects.filter(agent=agent).count() == 1
