"""Access requests under concurrency: real threads on their own connections, released together behind a lock.

Each race holds the agent's row in the main thread while the contenders start, waits (on the server's lock
table, not a sleep) until they queue behind it, then lets them go at once.
"""

from __future__ import annotations

import threading
from datetime import timedelta

from django.db import connection, connections, transaction
from django.utils import timezone

from agents.models import AccessRequest, WorkspaceAgent
from agents.services import elevation as services
from agents.services.principals import agent_principal_resolve
from agents.services.tokens import agent_token_issue
from audit.models import AuditEvent
from core.exceptions import Conflict
from tests.helpers.factories import AdminFactory, AgentFactory, UserFactory, mode
from tests.helpers.locks import wait_for_lock_waiters


def _setup():
    owner = UserFactory()
    agent = AgentFactory(workspace__owner=owner)
    issued = agent_token_issue(actor=owner, agent=agent)
    agent.permission_mode = mode("no-user-data")
    agent.save(update_fields=["permission_mode"])
    return owner, agent, agent_principal_resolve(raw_token=issued.plaintext)


def _ask(principal) -> AccessRequest:
    return services.access_request_create(
        principal=principal, scopes=["agent:gitsshkey"], reason="push release tag", duration_seconds=600
    )


def _race(agent_id, *calls, before_release=None) -> list:
    """Run `calls` in threads while this thread holds the agent's row; release them together. Each result is
    the call's return value or the exception it raised."""
    results: list = [None] * len(calls)

    def run(index, call):
        try:
            results[index] = call()
        except Exception as error:  # noqa: BLE001 (the outcome under test)
            results[index] = error
        finally:
            connection.close()

    with transaction.atomic():
        list(WorkspaceAgent.objects.select_for_update().filter(pk=agent_id))
        threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
        for thread in threads:
            thread.start()
        wait_for_lock_waiters(
            len(calls),
            gave_up=lambda: any(not thread.is_alive() for thread in threads)
            and f"a contender ended before it queued behind the lock: {results}",
        )
        if before_release:
            before_release()
    for thread in threads:
        thread.join(30)
    return results


def _actions(request_id) -> list[str]:
    return [
        event.action
        for event in AuditEvent.objects.filter(action__startswith="access_request.").order_by("id")
        if event.details["request_id"] == str(request_id)
    ]


def test_two_racing_requests_of_one_agent_open_only_one(transactional_db):
    _, agent, principal = _setup()

    results = _race(agent.id, lambda: _ask(principal), lambda: _ask(principal))

    created = [result for result in results if isinstance(result, AccessRequest)]
    refused = [result for result in results if isinstance(result, Conflict)]
    assert len(created) == 1 and len(refused) == 1, results
    assert refused[0].extra == {"id": str(created[0].id)}
    assert AccessRequest.objects.filter(agent=agent).count() == 1


def test_two_approvers_at_once_approve_once(transactional_db):
    owner, agent, principal = _setup()
    admin = AdminFactory()
    access_request = _ask(principal)

    results = _race(
        agent.id,
        lambda: services.access_request_approve(actor=owner, request_id=access_request.id, reason="owner ok"),
        lambda: services.access_request_approve(actor=admin, request_id=access_request.id, reason="admin ok"),
    )

    approved = [result for result in results if isinstance(result, AccessRequest)]
    refused = [result for result in results if isinstance(result, Conflict)]
    assert len(approved) == 1 and len(refused) == 1, results
    assert refused[0].extra["state"] == "approved"
    assert _actions(access_request.id) == ["access_request.created", "access_request.approved"]
    stored = AccessRequest.objects.get(pk=access_request.pk)
    assert stored.decided_by_id == approved[0].decided_by_id


def test_approve_racing_revoke_leaves_state_and_log_agreeing(transactional_db):
    """Either the approval lands first and the revoke ends it, or the revoke finds nothing to revoke (409).
    Never a revoked row without its approval in the log, nor an approval the log misses."""
    owner, agent, principal = _setup()
    access_request = _ask(principal)

    approve, revoke = _race(
        agent.id,
        lambda: services.access_request_approve(actor=owner, request_id=access_request.id, reason="ok"),
        lambda: services.access_request_revoke(actor=owner, request_id=access_request.id, reason="stop"),
    )

    assert isinstance(approve, AccessRequest), approve
    stored = AccessRequest.objects.get(pk=access_request.pk)
    if isinstance(revoke, Conflict):
        assert stored.state == "approved"
        assert _actions(access_request.id) == ["access_request.created", "access_request.approved"]
    else:
        assert isinstance(revoke, AccessRequest), revoke
        assert stored.state == "revoked"
        assert _actions(access_request.id) == [
            "access_request.created",
            "access_request.approved",
            "access_request.revoked",
        ]


def test_a_request_expiring_during_approval_is_refused_and_recorded_once(transactional_db, settings):
    """The approver decides on the row as locked: it lapsed while the approval waited, so 409, and the
    `access_request.expired` row is written once although both a reader and the approver meet it lapsed."""
    owner, agent, principal = _setup()
    access_request = _ask(principal)

    def lapse():
        with connections["default"].cursor() as cursor:
            cursor.execute(
                "UPDATE agents_accessrequest SET requested_at = %s WHERE id = %s",
                [
                    timezone.now() - timedelta(seconds=settings.CODERAUTH_ELEVATION_PENDING_SECONDS + 1),
                    access_request.id,
                ],
            )

    [approve] = _race(
        agent.id,
        lambda: services.access_request_approve(actor=owner, request_id=access_request.id, reason="late"),
        before_release=lapse,
    )

    assert isinstance(approve, Conflict), approve
    assert approve.extra["state"] == "expired"
    assert services.access_requests_expire_due() == 0
    assert _actions(access_request.id) == ["access_request.created", "access_request.expired"]
    assert AccessRequest.objects.get(pk=access_request.pk).state == "pending"
