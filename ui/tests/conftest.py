"""Browser-session clients per role for the web UI's view tests."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext


def client_logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def count_queries(client, url, params=None) -> int:
    """SQL queries one successful page load makes."""
    with CaptureQueriesContext(connection) as context:
        response = client.get(url, params or {})
    assert response.status_code == 200, response.content[:500]
    return len(context.captured_queries)


@pytest.fixture
def admin_web(admin_user) -> Client:
    return client_logged_in(admin_user)


@pytest.fixture
def auditor_web(auditor_user) -> Client:
    return client_logged_in(auditor_user)


@pytest.fixture
def member_web(member) -> Client:
    return client_logged_in(member)


@pytest.fixture
def anonymous_web() -> Client:
    return Client()


@pytest.fixture
def web_for(admin_web, auditor_web, member_web, anonymous_web):
    clients = {"admin": admin_web, "auditor": auditor_web, "member": member_web, "anonymous": anonymous_web}
    return clients.__getitem__
