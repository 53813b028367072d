"""Fixtures for every test package: users, a workspace and its agent, API clients per principal, agent tokens."""

from __future__ import annotations

import pytest
from django.db import connections
from django.db.models.signals import post_migrate
from rest_framework.test import APIClient

from agents.services.tokens import agent_token_issue
from tests.helpers.clients import client_for_agent_token, client_for_user
from tests.helpers.factories import (
    AdminFactory,
    AgentFactory,
    AuditorFactory,
    UserFactory,
    WorkspaceFactory,
    ensure_builtins,
)


def _audit_truncate_guard(*, enabled: bool, using: str = "default") -> None:
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"ALTER TABLE audit_auditevent {'ENABLE' if enabled else 'DISABLE'} TRIGGER audit_auditevent_no_truncate"
        )


def _rearm_audit_truncate_guard(sender, using="default", **kwargs) -> None:
    """Flush emits post_migrate once it has emptied the tables: the guard is back on for the next test."""
    if sender.label == "audit":
        _audit_truncate_guard(enabled=True, using=using)


post_migrate.connect(_rearm_audit_truncate_guard, dispatch_uid="tests-rearm-audit-truncate-guard")


@pytest.fixture(autouse=True)
def _builtins_after_flush(request):
    """Transactional tests (live_server) flush migration data; put the built-ins back for them.

    The flush TRUNCATEs every table, which the audit log's guard forbids: it is lifted just for the
    flush (this teardown runs right before it) and re-armed by the post_migrate the flush emits.
    """
    if "transactional_db" in request.fixturenames or "live_server" in request.fixturenames:
        request.getfixturevalue("transactional_db")
        ensure_builtins()
        yield
        _audit_truncate_guard(enabled=False)
    else:
        yield


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def admin_user(db):
    return AdminFactory()


@pytest.fixture
def auditor_user(db):
    return AuditorFactory()


@pytest.fixture
def member(db):
    return UserFactory()


@pytest.fixture
def other_member(db):
    return UserFactory()


@pytest.fixture
def workspace(member):
    return WorkspaceFactory(owner=member)


@pytest.fixture
def agent(workspace):
    return AgentFactory(workspace=workspace)


@pytest.fixture
def member_client(member) -> APIClient:
    return client_for_user(member)


@pytest.fixture
def other_member_client(other_member) -> APIClient:
    return client_for_user(other_member)


@pytest.fixture
def admin_client(admin_user) -> APIClient:
    return client_for_user(admin_user)


@pytest.fixture
def auditor_client(auditor_user) -> APIClient:
    return client_for_user(auditor_user)


@pytest.fixture
def agent_token(agent, member):
    """A root agent token (plaintext) with every scope the agent's mode allows."""
    return agent_token_issue(actor=member, agent=agent, name="test").plaintext


@pytest.fixture
def agent_client(agent_token) -> APIClient:
    return client_for_agent_token(agent_token)
