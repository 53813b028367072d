"""The throttles themselves (core/http/throttles.py): how they key, what they store, and that they hold when
requests arrive together."""

from __future__ import annotations

import threading

import pytest
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, connections
from django.test import RequestFactory

from core.http.throttles import (
    AgentTokenRateThrottle,
    PasswordAttemptAddressThrottle,
    PasswordAttemptUsernameThrottle,
    client_network,
    parse_rate,
    username_key,
)

factory = RequestFactory()


def _sign_in(username: str = "alice", address: str = "192.0.2.1"):
    return factory.post("/login/", {"username": username, "password": "x"}, REMOTE_ADDR=address)


@pytest.mark.parametrize(("rate", "expected"), [("10/min", (10, 60)), ("1/s", (1, 1)), ("30/hour", (30, 3600))])
def test_rates_parse(rate, expected):
    assert parse_rate(rate, setting="X") == expected


@pytest.mark.parametrize("rate", ["", "10", "ten/min", "0/min", "10/fortnight", "-1/min"])
def test_a_bad_rate_names_its_setting(rate):
    with pytest.raises(ImproperlyConfigured, match="CODERAUTH_AGENT_THROTTLE_RATE"):
        parse_rate(rate, setting="CODERAUTH_AGENT_THROTTLE_RATE")


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.9", "192.0.2.9"),
    ],
)
def test_ipv6_clients_are_counted_by_their_64(address, network):
    """Regression: one IPv6 subscriber holds a /64; counting single addresses handed it 2^64 sign-in budgets."""
    assert client_network(factory.get("/", REMOTE_ADDR=address)) == network


def test_usernames_are_normalised_before_they_are_counted():
    """`Alice`, ` alice ` and the full-width `ａｌｉｃｅ` are one account's budget, not three."""
    assert username_key("Alice") == username_key(" alice ") == username_key("ａｌｉｃｅ") == username_key("ALICE")
    assert username_key("alice") != username_key("bob")


def test_the_cache_never_holds_a_typed_username(db):
    """Regression: people type passwords into the username field; the cache table keeps a keyed hash of it only."""
    typed = "Hunter2-is-my-password"
    assert PasswordAttemptUsernameThrottle().allow_request(_sign_in(username=typed), None)
    with connection.cursor() as cursor:
        cursor.execute("SELECT cache_key, value FROM coderauth_cache")
        stored = " ".join(f"{key} {value}" for key, value in cursor.fetchall())
    assert username_key(typed) in stored
    assert typed.lower() not in stored.lower()


def test_the_address_budget_counts_signed_in_callers_too(db, settings, django_user_model):
    """Regression: DRF's AnonRateThrottle skips authenticated requests, so a signed-in member guessed freely."""
    settings.CODERAUTH_LOGIN_THROTTLE_RATE = "2/min"
    request = _sign_in()
    request.user = django_user_model.objects.create_user("signed-in")
    assert [PasswordAttemptAddressThrottle().allow_request(request, None) for _ in range(3)] == [True, True, False]


def test_a_refused_request_says_how_long_to_wait(db, settings):
    settings.CODERAUTH_LOGIN_THROTTLE_RATE = "1/hour"
    assert PasswordAttemptAddressThrottle().allow_request(_sign_in(), None)
    throttle = PasswordAttemptAddressThrottle()
    assert not throttle.allow_request(_sign_in(), None)
    assert 3590 < throttle.wait() <= 3600


def test_parallel_attempts_cannot_slip_past_the_budget_together(transactional_db, settings):
    """Regression: DRF reads the count and writes it back later, so requests arriving together all saw the same
    count and all passed. Under the lock, 12 simultaneous attempts against a budget of 5 let exactly 5 through."""
    settings.CODERAUTH_LOGIN_USERNAME_THROTTLE_RATE = "5/min"
    cache.clear()
    barrier = threading.Barrier(12)
    results: list[bool] = []

    def attempt(number: int) -> None:
        try:
            request = _sign_in(username="target", address=f"198.51.100.{number}")
            barrier.wait()
            results.append(PasswordAttemptUsernameThrottle().allow_request(request, None))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=attempt, args=(number,)) for number in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    cache.clear()
    assert sorted(results) == [False] * 7 + [True] * 5


class _AgentRequest:
    def __init__(self, token_id):
        self.auth = type("Principal", (), {"token_id": token_id})()


def test_an_agent_bucket_allows_its_burst_then_refills(settings, monkeypatch):
    settings.CODERAUTH_AGENT_THROTTLE_RATE = "3/min"
    clock = [1000.0]
    monkeypatch.setattr(AgentTokenRateThrottle, "timer", lambda self: clock[0])
    request = _AgentRequest("token-refill")
    assert [AgentTokenRateThrottle().allow_request(request, None) for _ in range(4)] == [True, True, True, False]
    clock[0] += 20  # a third of a minute: one request's worth
    assert AgentTokenRateThrottle().allow_request(request, None)
    refused = AgentTokenRateThrottle()
    assert not refused.allow_request(request, None)
    assert 19 < refused.wait() <= 20


def test_agent_buckets_stay_bounded_in_memory(settings, monkeypatch):
    settings.CODERAUTH_AGENT_THROTTLE_RATE = "1/min"
    monkeypatch.setattr(AgentTokenRateThrottle, "max_tracked_tokens", 3)
    for number in range(10):
        AgentTokenRateThrottle().allow_request(_AgentRequest(f"bounded-{number}"), None)
    assert len(AgentTokenRateThrottle._buckets) <= 3
