"""POST /api/v2/users/login: password attempts per client address and per username, signed in or not."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from tests.helpers.clients import client_for_user
from tests.helpers.factories import PASSWORD
from tests.helpers.responses import assert_status

pytestmark = pytest.mark.django_db

LOGIN = "agents:user-login"


def _attempt(client: APIClient, username: str, address: str, password: str = "wrong"):
    return client.post(reverse(LOGIN), {"username": username, "password": password}, format="json", REMOTE_ADDR=address)


def test_username_budget_holds_across_addresses(member, settings):
    """Regression: guesses spread over many addresses were never limited per account. Ten from ten addresses
    spend the account's budget; the eleventh, from yet another address and with the right password, is 429."""
    settings.CODERAUTH_LOGIN_THROTTLE_RATE = "100/min"
    client = APIClient()
    statuses = [_attempt(client, member.username, f"198.51.100.{n}").status_code for n in range(10)]
    assert statuses == [401] * 10
    response = _attempt(client, member.username, "203.0.113.99", password=PASSWORD)
    assert_status(response, 429)
    assert response.json()["detail"]
    assert 0 < int(response["Retry-After"]) <= 60
    # Another account from the same addresses is not affected.
    assert_status(_attempt(client, "someone-else", "198.51.100.1"), 401)


def test_username_variants_share_one_budget(member, settings):
    """`Member`, ` member ` and `MEMBER` are one account's budget: changing the case buys no attempts."""
    settings.CODERAUTH_LOGIN_THROTTLE_RATE = "100/min"
    settings.CODERAUTH_LOGIN_USERNAME_THROTTLE_RATE = "3/min"
    client = APIClient()
    variants = [member.username.upper(), f" {member.username} ", member.username.title()]
    assert [_attempt(client, name, f"198.51.100.{n}").status_code for n, name in enumerate(variants)] == [401] * 3
    assert_status(_attempt(client, member.username, "198.51.100.9", password=PASSWORD), 429)


def test_a_signed_in_caller_is_throttled_too(member, other_member):
    """Regression: the login throttle was DRF's AnonRateThrottle, which never limits an authenticated request:
    a caller holding any valid token could guess another account's password without limit."""
    client = client_for_user(member)
    statuses = [_attempt(client, other_member.username, "192.0.2.10").status_code for _ in range(10)]
    assert statuses == [401] * 10
    response = _attempt(client, other_member.username, "192.0.2.10", password=PASSWORD)
    assert_status(response, 429)
    assert response["Retry-After"]


def test_address_budget_holds_across_usernames(settings):
    """One address trying many accounts meets the per-address budget (CODERAUTH_LOGIN_THROTTLE_RATE)."""
    settings.CODERAUTH_LOGIN_THROTTLE_RATE = "4/min"
    client = APIClient()
    statuses = [_attempt(client, f"user-{n}", "192.0.2.20").status_code for n in range(5)]
    assert statuses == [401] * 4 + [429]
    assert_status(_attempt(client, "user-9", "192.0.2.21"), 401)


def test_the_rates_are_read_per_request(settings):
    """Settings changes apply without a restart of the throttle classes (the tests rely on it too)."""
    settings.CODERAUTH_LOGIN_THROTTLE_RATE = "1/min"
    client = APIClient()
    assert_status(_attempt(client, "a", "192.0.2.30"), 401)
    assert_status(_attempt(client, "b", "192.0.2.30"), 429)
    settings.CODERAUTH_LOGIN_THROTTLE_RATE = "5/min"
    assert_status(_attempt(client, "c", "192.0.2.30"), 401)
