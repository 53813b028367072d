"""Browser-session clients per role for the web UI's view tests."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.helpers.clients import client_logged_in


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
