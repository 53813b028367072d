"""The web sign-ins (/login/ and /admin/login/) share the API login's budgets, signed in or not, and answer
429 with Retry-After on the sign-in page."""

from __future__ import annotations

from django.urls import reverse

from tests.helpers.factories import PASSWORD


def _post(client, url_name: str, username: str, password: str = "wrong", address: str = "192.0.2.40"):
    return client.post(reverse(url_name), {"username": username, "password": password}, REMOTE_ADDR=address)


def test_a_signed_in_member_is_throttled_at_admin_login(member_web, admin_user):
    """Regression: the web sign-in reused AnonRateThrottle, which skips signed-in callers, so a member already
    signed in could POST /admin/login/ forever, guessing an admin's password."""
    statuses = [_post(member_web, "admin:login", admin_user.username).status_code for _ in range(10)]
    assert statuses == [200] * 10
    response = _post(member_web, "admin:login", admin_user.username, password=PASSWORD)
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 60
    assert "Too many sign-in attempts" in response.content.decode()
    assert member_web.get(reverse("admin:index")).status_code == 302, "still not signed in as the admin"


def test_the_web_sign_in_limits_a_username_across_addresses(anonymous_web, member, settings):
    """Ten guesses at one account from ten addresses spend its budget; the right password is then refused."""
    settings.CODERAUTH_LOGIN_THROTTLE_RATE = "100/min"
    statuses = [
        _post(anonymous_web, "ui:login", member.username, address=f"198.51.100.{n}").status_code for n in range(10)
    ]
    assert statuses == [200] * 10
    response = _post(anonymous_web, "ui:login", member.username.upper(), password=PASSWORD, address="203.0.113.5")
    assert response.status_code == 429
    assert response["Retry-After"]
    assert "_auth_user_id" not in anonymous_web.session


def test_api_and_web_sign_ins_share_one_username_budget(anonymous_web, api_client, member, settings):
    """Spreading guesses over the API, /login/ and /admin/login/ does not multiply an account's budget."""
    settings.CODERAUTH_LOGIN_THROTTLE_RATE = "100/min"
    settings.CODERAUTH_LOGIN_USERNAME_THROTTLE_RATE = "3/min"
    api_client.post(reverse("agents:user-login"), {"username": member.username, "password": "x"}, format="json")
    _post(anonymous_web, "ui:login", member.username, address="198.51.100.1")
    _post(anonymous_web, "admin:login", member.username, address="198.51.100.2")
    assert _post(anonymous_web, "ui:login", member.username, PASSWORD, address="198.51.100.3").status_code == 429
