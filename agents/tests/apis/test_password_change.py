"""Credentials follow the password: every way of changing one (the API, the web page, the Django admin's two
forms, `manage.py changepassword`) writes `user.password_changed` without the hash and, unless
CODERAUTH_PASSWORD_CHANGE_REVOKES is off, revokes the user's other API logins and API tokens and ends their
other web sessions. The credential that made the change keeps working."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from agents.models import UserToken
from agents.services.users import user_login, user_token_issue
from audit.models import AuditEvent
from tests.helpers.clients import client_logged_in
from tests.helpers.factories import PASSWORD, AdminFactory
from tests.helpers.responses import assert_status

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a fresh and long passphrase 31"
ME = "agents:user-me"


class Credentials:
    """A user signed in everywhere: two browsers, an API login session and an API token."""

    def __init__(self, user):
        self.user = user
        self.browser = client_logged_in(user)
        self.other_browser = client_logged_in(user)
        self.api_login = user_login(username=user.username, password=PASSWORD).plaintext
        self.api_token = user_token_issue(user=user, name="laptop").plaintext

    def api(self, token: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client

    def live(self) -> dict[str, bool]:
        return {
            "browser": self.browser.get(reverse("ui:workspace-list")).status_code == 200,
            "other_browser": self.other_browser.get(reverse("ui:workspace-list")).status_code == 200,
            "api_login": self.api(self.api_login).get(reverse(ME)).status_code == 200,
            "api_token": self.api(self.api_token).get(reverse(ME)).status_code == 200,
        }


def _the_event(user) -> AuditEvent:
    (event,) = AuditEvent.objects.filter(action="user.password_changed")
    assert event.details["user_id"] == user.pk
    serialized = str(event.details)
    user.refresh_from_db()
    assert user.password not in serialized and NEW_PASSWORD not in serialized and PASSWORD not in serialized
    return event


def _signs_in_with(user, password: str) -> bool:
    return get_user_model().objects.get(pk=user.pk).check_password(password)


# --- The API -------------------------------------------------------------------------------------------------


def test_api_password_change_revokes_the_other_credentials(member):
    """POST /api/v2/users/me/password with the API login session: the API token, both browsers' sessions
    are revoked; the API login that made the change keeps working; the answer counts what went."""
    signed_in = Credentials(member)
    response = signed_in.api(signed_in.api_login).post(
        reverse("agents:user-password"),
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        format="json",
    )
    assert_status(response, 200)
    assert response.json() == {"revoked_sessions": 2, "revoked_tokens": 1}
    assert signed_in.live() == {"browser": False, "other_browser": False, "api_login": True, "api_token": False}
    assert _signs_in_with(member, NEW_PASSWORD)
    event = _the_event(member)
    assert (event.actor_type, event.actor) == ("user", member.username)
    assert event.details["method"] == "api"
    assert event.details["web_sessions_ended"] == 2
    assert len(event.details["api_tokens_revoked"]) == 1 and event.details["session_tokens_revoked"] == []


def test_api_password_change_with_the_session_cookie_keeps_that_session(member):
    signed_in = Credentials(member)
    client = APIClient()
    client.cookies = signed_in.browser.cookies
    response = client.post(
        reverse("agents:user-password"), {"current_password": PASSWORD, "new_password": NEW_PASSWORD}, format="json"
    )
    assert_status(response, 200)
    assert response.json() == {"revoked_sessions": 2, "revoked_tokens": 1}
    signed_in.browser.cookies = client.cookies  # the session was re-keyed
    assert signed_in.live() == {"browser": True, "other_browser": False, "api_login": False, "api_token": False}


def test_wrong_current_password_changes_nothing(member):
    signed_in = Credentials(member)
    response = signed_in.api(signed_in.api_token).post(
        reverse("agents:user-password"), {"current_password": "wrong", "new_password": NEW_PASSWORD}, format="json"
    )
    assert_status(response, 400)
    assert response.json()["current_password"]
    assert _signs_in_with(member, PASSWORD)
    assert all(signed_in.live().values())
    assert not AuditEvent.objects.filter(action="user.password_changed").exists()


@pytest.mark.parametrize("weak", ["short", "password123", "12345678901"])
def test_django_password_validators_apply(member, weak):
    response = (
        Credentials(member)
        .api(user_token_issue(user=member, name="cli").plaintext)
        .post(reverse("agents:user-password"), {"current_password": PASSWORD, "new_password": weak}, format="json")
    )
    assert_status(response, 400)
    assert response.json()["new_password"]
    assert _signs_in_with(member, PASSWORD)


def test_current_password_guesses_spend_the_sign_in_budget(member, settings):
    """Regression: a stolen session could guess the current password here without limit. Guesses spend the
    account's sign-in budget, from any address, and sign-in attempts count against them too."""
    settings.CODERAUTH_LOGIN_THROTTLE_RATE = "100/min"
    client = Credentials(member).api(user_token_issue(user=member, name="stolen").plaintext)
    url = reverse("agents:user-password")
    statuses = [
        client.post(
            url,
            {"current_password": f"guess-{n}", "new_password": NEW_PASSWORD},
            format="json",
            REMOTE_ADDR=f"10.9.0.{n}",
        ).status_code
        for n in range(10)
    ]
    assert statuses == [400] * 10
    response = client.post(url, {"current_password": PASSWORD, "new_password": NEW_PASSWORD}, format="json")
    assert_status(response, 429)
    assert response["Retry-After"]
    login = APIClient().post(
        reverse("agents:user-login"), {"username": member.username, "password": PASSWORD}, format="json"
    )
    assert_status(login, 429)


def test_the_revocation_can_be_turned_off(member, settings):
    """CODERAUTH_PASSWORD_CHANGE_REVOKES=false: API logins and tokens stay; the change is still audited."""
    settings.CODERAUTH_PASSWORD_CHANGE_REVOKES = False
    signed_in = Credentials(member)
    response = signed_in.api(signed_in.api_login).post(
        reverse("agents:user-password"), {"current_password": PASSWORD, "new_password": NEW_PASSWORD}, format="json"
    )
    assert_status(response, 200)
    assert response.json() == {"revoked_sessions": 0, "revoked_tokens": 0}
    live = signed_in.live()
    assert live["api_login"] and live["api_token"]
    assert _the_event(member).details["revokes"] is False


# --- The web page --------------------------------------------------------------------------------------------


def test_web_password_change_revokes_the_other_credentials_and_says_so(member):
    signed_in = Credentials(member)
    response = signed_in.browser.post(
        reverse("ui:password-change"),
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        follow=True,
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "Password changed. Revoked elsewhere: 2 sessions and 1 API token." in page
    assert signed_in.live() == {"browser": True, "other_browser": False, "api_login": False, "api_token": False}
    assert _the_event(member).details["method"] == "web"


def test_web_password_change_refuses_a_wrong_current_password(member):
    signed_in = Credentials(member)
    response = signed_in.browser.post(
        reverse("ui:password-change"),
        {"old_password": "wrong", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 200
    assert "incorrectly" in response.content.decode()
    assert _signs_in_with(member, PASSWORD)
    assert all(signed_in.live().values())


def test_web_password_change_is_throttled_with_retry_after(member, settings):
    settings.CODERAUTH_LOGIN_USERNAME_THROTTLE_RATE = "2/min"
    member_web = client_logged_in(member)
    url = reverse("ui:password-change")
    for _ in range(2):
        member_web.post(url, {"old_password": "x", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    response = member_web.post(
        url, {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )
    assert response.status_code == 429
    assert response["Retry-After"]
    assert "Too many sign-in attempts" in response.content.decode()
    assert _signs_in_with(member, PASSWORD)


def test_the_password_page_needs_a_signed_in_user():
    response = Client().get(reverse("ui:password-change"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("ui:login"))


# --- The Django admin ----------------------------------------------------------------------------------------


def test_admin_setting_a_users_password_revokes_all_their_credentials(member):
    """The admin's per-user password form: the user's every session and token goes; the admin stays."""
    admin_user = AdminFactory(is_staff=True, is_superuser=True)
    admin_web = client_logged_in(admin_user)
    signed_in = Credentials(member)
    response = admin_web.post(
        reverse("admin:auth_user_password_change", args=[member.pk]),
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
        follow=True,
    )
    assert response.status_code == 200
    assert f"Revoked for {member.username}: 3 sessions and 1 API token." in response.content.decode()
    assert not any(signed_in.live().values())
    event = _the_event(member)
    assert (event.actor, event.details["method"]) == (admin_user.username, "admin")
    assert admin_web.get(reverse("admin:index")).status_code == 200


def test_admin_disabling_password_sign_in_revokes_too(member):
    admin_web = client_logged_in(AdminFactory(is_staff=True, is_superuser=True))
    signed_in = Credentials(member)
    admin_web.post(
        reverse("admin:auth_user_password_change", args=[member.pk]),
        {"usable_password": "false", "unset-password": "1"},
    )
    assert not any(signed_in.live().values())
    assert _the_event(member).details["usable_password"] is False


def test_the_admins_own_password_change_view_audits_and_revokes(member):
    """/admin/password_change/ (Django's own audits nothing) is the UI's change, in the admin's look."""
    admin_user = AdminFactory(is_staff=True, is_superuser=True)
    signed_in = Credentials(admin_user)
    response = signed_in.browser.post(
        reverse("admin:password_change"),
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:password_change_done")
    assert signed_in.live() == {"browser": True, "other_browser": False, "api_login": False, "api_token": False}
    assert _the_event(admin_user).details["method"] == "admin"
    page = signed_in.browser.get(reverse("admin:password_change")).content.decode()
    assert 'name="old_password"' in page and "Django administration" in page


def test_the_admins_own_password_change_view_is_staff_only(member):
    response = client_logged_in(member).get(reverse("admin:password_change"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


# --- manage.py changepassword ----------------------------------------------------------------------------------


def test_changepassword_command_audits_and_revokes(member, monkeypatch):
    """The command from a shell: Django's prompts and validators, then the same audit row and revocation."""
    signed_in = Credentials(member)
    monkeypatch.setattr("getpass.getpass", lambda prompt="": NEW_PASSWORD)
    out = StringIO()
    call_command("changepassword", member.username, stdout=out)
    assert f"Revoked for '{member.username}': 3 sessions and 1 API token." in out.getvalue()
    assert not any(signed_in.live().values())
    assert _signs_in_with(member, NEW_PASSWORD)
    event = _the_event(member)
    assert (event.actor_type, event.actor, event.details["method"]) == ("system", "changepassword", "changepassword")
    assert not Session.objects.exists()
    assert not UserToken.objects.filter(user=member, revoked_at__isnull=True).exists()
