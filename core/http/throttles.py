"""Request budgets, each answered with 429 and Retry-After once spent (docs/concepts.md, "Request budgets").

- Password attempts (every sign-in path, and the password-change forms that ask for the current password): per
  client address and per username, signed in or not. The counters live in the shared database cache, so every
  app process sees the same budget, and each is read and written under a lock, so parallel requests cannot
  slip past it together.
- Agent requests: per agent token, in this process's memory, so the agent hot path stays one SQL query. With
  several worker processes a token may spend the budget in each of them (docs/operations.md).
- Access requests (just-in-time elevation): per agent, in the shared database cache.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
import unicodedata
from collections import OrderedDict

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils.crypto import salted_hmac
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from core.http.middleware import client_ip
from core.locks import transaction_lock

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# IPv6 clients are counted by their /64: one subscriber usually holds a whole /64, so counting single
# addresses would hand them 2^64 budgets.
_IPV6_PREFIX = 64


def parse_rate(rate: str, *, setting: str) -> tuple[int, int]:
    """`10/min` -> (10, 60). The period is s, min, hour or day (only its first letter counts, as in DRF)."""
    count, _, period = rate.partition("/")
    if not count.isdigit() or int(count) < 1 or period[:1] not in _PERIODS:
        raise ImproperlyConfigured(f"{setting} must look like 10/min (a count per s, min, hour or day), not {rate!r}.")
    return int(count), _PERIODS[period[0]]


def client_network(request) -> str:
    """The address a budget is kept for: the client's IPv4 address, or its IPv6 /64."""
    address = client_ip(request)
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return str(address)
    if parsed.version == 6:
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/{_IPV6_PREFIX}", strict=False))
    return str(parsed)


def username_key(username: str) -> str:
    """What a username's budget is filed under: normalised as Django normalises usernames (NFKC), case-folded
    and stripped, so `Alice` and ` alice` share one budget; then keyed-hashed, because people type passwords
    into the username field and the cache table must not keep them."""
    normalised = unicodedata.normalize("NFKC", username).strip().casefold()
    return salted_hmac("coderauth.throttles.username", normalised, algorithm="sha256").hexdigest()


def submitted_username(request) -> str:
    """The `username` of a sign-in form (a Django request) or JSON body (a DRF request), or ''."""
    data = request.data if hasattr(request, "data") else request.POST
    username = data.get("username") if hasattr(data, "get") else None
    return username if isinstance(username, str) else ""


class SharedRateThrottle(SimpleRateThrottle):
    """DRF's sliding-window throttle over the shared database cache, with each read-and-update under a lock
    (DRF's own reads, then writes, so N parallel requests would all see the same count and all pass).
    The rate is read from `rate_setting` when the throttle is made, once per request."""

    rate_setting: str = ""

    def get_rate(self) -> str:
        return getattr(settings, self.rate_setting)

    def parse_rate(self, rate):
        return parse_rate(rate, setting=self.rate_setting)

    def allow_request(self, request, view) -> bool:
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        with transaction.atomic():
            transaction_lock(key)
            return super().allow_request(request, view)


class PasswordAttemptAddressThrottle(SharedRateThrottle):
    """Password attempts per client address (CODERAUTH_LOGIN_THROTTLE_RATE), whoever is signed in."""

    scope = "password_address"
    rate_setting = "CODERAUTH_LOGIN_THROTTLE_RATE"

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": client_network(request)}


class PasswordAttemptUsernameThrottle(SharedRateThrottle):
    """Password attempts per username, from any number of addresses (CODERAUTH_LOGIN_USERNAME_THROTTLE_RATE).
    Sign-in forms name the account in their `username` field."""

    scope = "password_username"
    rate_setting = "CODERAUTH_LOGIN_USERNAME_THROTTLE_RATE"

    def username(self, request) -> str:
        return submitted_username(request)

    def get_cache_key(self, request, view) -> str | None:
        username = self.username(request)
        if not username:
            return None
        return self.cache_format % {"scope": self.scope, "ident": username_key(username)}


class SignedInPasswordThrottle(PasswordAttemptUsernameThrottle):
    """A password change that asks for the current password spends the signed-in account's sign-in budget:
    a stolen session cannot guess the password faster than the sign-in form could."""

    def username(self, request) -> str:
        user = getattr(request, "user", None)
        return user.get_username() if user is not None and user.is_authenticated else ""


class ElevationRequestThrottle(SharedRateThrottle):
    """Access requests per agent, whichever of its tokens asks (CODERAUTH_ELEVATION_REQUEST_RATE), in the shared
    cache: every app process counts against one budget. It runs before validation, so refused requests count."""

    scope = "elevation_request"
    rate_setting = "CODERAUTH_ELEVATION_REQUEST_RATE"

    def get_cache_key(self, request, view) -> str | None:
        agent_id = getattr(request.auth, "agent_id", None)
        if agent_id is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": str(agent_id)}


SIGN_IN_THROTTLES = (PasswordAttemptAddressThrottle, PasswordAttemptUsernameThrottle)
PASSWORD_CHANGE_THROTTLES = (PasswordAttemptAddressThrottle, SignedInPasswordThrottle)


def retry_after(request, view, throttle_classes) -> int | None:
    """For views outside DRF (the web forms): None when every throttle lets the request through, else the
    seconds to wait (the Retry-After value), as DRF's `check_throttles` decides for API views."""
    waits = []
    for throttle_class in throttle_classes:
        throttle = throttle_class()
        if not throttle.allow_request(request, view):
            waits.append(throttle.wait() or 0)
    if not waits:
        return None
    return max(1, math.ceil(max(waits)))


class AgentTokenRateThrottle(BaseThrottle):
    """Agent requests per token (CODERAUTH_AGENT_THROTTLE_RATE), a token bucket in this process's memory.

    The rate's count is the burst a token may spend at once; it refills at count per period. Kept in memory
    because the agent hot path costs one SQL query, and a shared counter would add a write per request.
    Buckets of the least recently seen tokens are dropped past `max_tracked_tokens` (memory stays bounded).
    """

    max_tracked_tokens = 10_000
    timer = time.monotonic
    _buckets: OrderedDict = OrderedDict()  # token id -> (tokens left, when counted)
    _lock = threading.Lock()

    def __init__(self):
        self.capacity, self.period = parse_rate(
            settings.CODERAUTH_AGENT_THROTTLE_RATE, setting="CODERAUTH_AGENT_THROTTLE_RATE"
        )
        self._wait = None

    def allow_request(self, request, view) -> bool:
        token_id = getattr(request.auth, "token_id", None)
        if token_id is None:
            return True
        refill_per_second = self.capacity / self.period
        with self._lock:
            now = self.timer()
            left, counted_at = self._buckets.pop(token_id, (self.capacity, now))
            left = min(self.capacity, left + (now - counted_at) * refill_per_second)
            allowed = left >= 1
            if allowed:
                left -= 1
            self._buckets[token_id] = (left, now)
            while len(self._buckets) > self.max_tracked_tokens:
                self._buckets.popitem(last=False)
        if not allowed:
            self._wait = (1 - left) / refill_per_second
        return allowed

    def wait(self) -> float | None:
        return self._wait
