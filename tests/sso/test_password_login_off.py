"""CODERAUTH_PASSWORD_LOGIN=false: the web form, /admin/login/ and the API login all refuse a correct password with
a clear answer, audited; the sign-in page offers single sign-on and the one-time code instead."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from agents.models import UserToken
from audit.models import AuditEvent
from tests.helpers.factories import PASSWORD, AdminFactory


@pytest.fixture
def passwords_off(db, settings):
    settings.CODERAUTH_PASSWORD_LOGIN = False
    return AdminFactory(username="ops")


def _refusal_audited(method: str) -> None:
    failed = AuditEvent.objects.get(action="user.login_failed")
    assert failed.actor == "ops"
    assert failed.details == {"method": method, "reason": "password_login_off"}
    assert not AuditEvent.objects.filter(action="user.login").exists()


def test_the_web_form_refuses_a_correct_password(passwords_off):
    client = Client()
    response = client.post("/login/", {"username": "ops", "password": PASSWORD})
    assert response.status_code == 403
    assert b"Password sign-in is turned off" in response.content
    assert "_auth_user_id" not in client.session
    _refusal_audited("web")


def test_admin_login_refuses_a_correct_password(passwords_off):
    client = Client()
    response = client.post("/admin/login/", {"username": "ops", "password": PASSWORD, "next": "/admin/"})
    assert response.status_code == 403
    assert b"Password sign-in is turned off" in response.content
    assert "_auth_user_id" not in client.session
    _refusal_audited("web")


def test_the_api_login_refuses_a_correct_password_with_json(passwords_off):
    response = APIClient().post("/api/v2/users/login", {"username": "ops", "password": PASSWORD}, format="json")
    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"].startswith("Password sign-in is turned off")
    assert not UserToken.objects.exists()
    _refusal_audited("password")


def test_the_sign_in_page_shows_no_password_form_but_points_to_the_one_time_code(passwords_off):
    page = Client().get("/login/").content.decode()
    assert 'name="password"' not in page
    assert "/login/break-glass/" in page


def test_api_tokens_keep_working_with_passwords_off(passwords_off):
    """Only the password sign-ins are off: a personal API token still authenticates."""
    client = APIClient()
    client.force_authenticate(passwords_off)
    token = client.post("/api/v2/users/me/tokens", {"name": "ci"}, format="json").json()["token"]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.get("/api/v2/users/me").json()["username"] == "ops"


def test_the_sign_in_page_offers_single_sign_on_when_it_is_on(sso, settings):
    settings.CODERAUTH_PASSWORD_LOGIN = False
    page = sso.client.get("/login/?next=/audit/").content.decode()
    assert "Sign in with Acme SSO" in page
    assert 'href="/sso/login/?next=/audit/"' in page
    assert 'name="password"' not in page


def test_with_passwords_on_the_page_offers_both(sso):
    page = sso.client.get("/login/").content.decode()
    assert 'name="password"' in page and "Sign in with Acme SSO" in page
    assert "/login/break-glass/" not in page
