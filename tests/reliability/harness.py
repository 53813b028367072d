"""Races over real HTTP: client threads against one live server, every call recorded for the checks afterwards.

Each call carries its own X-Request-ID, which the server stores on every audit row the request writes, so
the checks match each answer to exactly the events it caused. Times are this process's time.monotonic():
a call `started` just before its request was sent and `finished` once its whole answer was read.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from io import StringIO
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.contrib.messages.storage.cookie import CookieStorage
from django.core.management import call_command
from django.http import HttpRequest
from django.test import Client
from django.utils.crypto import get_random_string

from agents.services.users import user_token_issue
from audit import actions
from audit.models import AuditEvent

THREADS = 20

# One line per request would drown a failure's report.
logging.getLogger("httpx").setLevel(logging.WARNING)

# Events a refused request writes by design: the refusal is the evidence (docs/audit.md).
REFUSAL_ACTIONS = frozenset({actions.AGENT_TOKEN_REJECTED, actions.AGENT_ACCESS_DENIED})


@dataclass(frozen=True)
class Size:
    """How many operations each path of a race gets: `fast` runs in the normal suite, `full` is reliability."""

    name: str
    operations: int


FAST = Size("fast", 100)
FULL = Size("full", 500)
SIZES = [pytest.param(FAST, id="fast"), pytest.param(FULL, id="full", marks=pytest.mark.reliability)]


@dataclass(frozen=True)
class Person:
    user: object
    token: str  # a user API token (plaintext)


def person(factory) -> Person:
    """A user made by `factory`, with an API token."""
    user = factory()
    return Person(user=user, token=user_token_issue(user=user, name="race").plaintext)


@dataclass
class Call:
    op: str
    method: str
    path: str
    request_id: str
    started: float
    finished: float
    status: int
    body: Any
    meta: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """A 2xx, unless the task decided otherwise from the answer (`meta["ok"]`, for web pages' redirects)."""
        return self.meta.get("ok", 200 <= self.status < 300)

    def __str__(self) -> str:
        return f"{self.op} {self.method} {self.path} -> {self.status} [{self.request_id}] {str(self.body)[:300]}"


class Race:
    """Runs tasks on THREADS client threads, each with its own keep-alive connection, and records every call."""

    def __init__(self, base_url: str, *, threads: int = THREADS, seed: int | None = None):
        self.base_url = base_url
        self.threads = threads
        self.calls: list[Call] = []
        self.seconds = 0.0
        self.random = random.Random(seed)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._clients: list[httpx.Client] = []

    def _client(self) -> httpx.Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = httpx.Client(base_url=self.base_url, timeout=60)
            with self._lock:
                self._clients.append(client)
        return client

    def call(
        self,
        op: str,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        data: Any = None,
        headers: dict | None = None,
        **meta,
    ) -> Call:
        request_id = f"{op}-{uuid.uuid4().hex}"
        headers = {"X-Request-ID": request_id, **(headers or {})}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        started = time.monotonic()
        response = self._client().request(method, path, headers=headers, json=json, data=data)
        finished = time.monotonic()
        try:
            body = response.json()
        except ValueError:
            body = response.text[:500]
        call = Call(op, method, path, request_id, started, finished, response.status_code, body, meta)
        call.meta["response"] = response
        with self._lock:
            self.calls.append(call)
        return call

    def run(self, tasks: list[Callable[[], None]]) -> float:
        """Run the tasks, in their order, on all threads at once; returns the seconds races took so far."""
        started = time.monotonic()
        with ThreadPoolExecutor(self.threads) as pool:
            for future in [pool.submit(task) for task in tasks]:
                future.result()
        self.seconds += time.monotonic() - started
        return self.seconds

    def close(self) -> None:
        """Close every client's connection: the live server's thread for it then closes its database connection."""
        for client in self._clients:
            client.close()

    def ops(self, op: str) -> list[Call]:
        return [call for call in self.calls if call.op == op]

    def summary(self) -> str:
        """One line per operation: how many calls, and their statuses."""
        by_op: dict[str, Counter] = defaultdict(Counter)
        for call in self.calls:
            by_op[call.op][call.status] += 1
        return "\n".join(
            f"  {op:<28} {sum(statuses.values()):>5} calls  {dict(sorted(statuses.items()))}"
            for op, statuses in sorted(by_op.items())
        )


def mixed(race: Race, plan: Iterable[tuple[Callable[[], None], int]]) -> list[Callable[[], None]]:
    """`count` copies of each task, shuffled together so every path runs against every other."""
    tasks = [task for task, count in plan for _ in range(count)]
    race.random.shuffle(tasks)
    return tasks


def assert_no_server_errors(race: Race) -> None:
    failures = [call for call in race.calls if call.status >= 500]
    assert not failures, f"{len(failures)} server errors of {len(race.calls)} calls:\n" + "\n".join(
        str(call) for call in failures[:20]
    )


def revoked_before(calls: Iterable[Call], covered) -> dict[str, float]:
    """When each token was known to be revoked: the earliest answer of a successful revocation that covers it
    (`covered(call)`: the ids a revocation takes, such as the token and its subtree)."""
    revoked: dict[str, float] = {}
    for call in calls:
        if call.ok:
            for token_id in covered(call):
                revoked[token_id] = min(call.finished, revoked.get(token_id, call.finished))
    return revoked


def assert_no_use_after_revocation(race: Race, revoked: dict[str, float]) -> int:
    """No call that started after its token's revocation had been answered was accepted. Returns how many
    calls started after it (each one refused), so a test can show the check had something to check."""
    late = [
        call
        for call in race.calls
        if call.meta.get("token_id") in revoked and call.started > revoked[call.meta["token_id"]]
    ]
    accepted = [call for call in late if call.ok]
    assert not accepted, f"{len(accepted)} calls accepted a token revoked before they started:\n" + "\n".join(
        str(call) for call in accepted[:20]
    )
    return len(late)


def events_by_request(race: Race) -> dict[str, list[AuditEvent]]:
    """The audit events each recorded call wrote, in chain order."""
    ids = [call.request_id for call in race.calls]
    grouped: dict[str, list[AuditEvent]] = defaultdict(list)
    for chunk in range(0, len(ids), 1000):
        for event in AuditEvent.objects.filter(request_id__in=ids[chunk : chunk + 1000]).order_by("id"):
            grouped[event.request_id].append(event)
    return grouped


@dataclass(frozen=True)
class Writes:
    """What one successful call of an operation writes to the audit log: `action`, between `least` and `most`
    times (a no-op success, such as setting the mode a workspace already has, writes nothing), and each of
    the `optional` actions at most once (an agent's first read of the owner's key also creates it)."""

    action: str
    least: int = 1
    most: int = 1
    optional: frozenset[str] = frozenset()


NOTHING = Writes(action="", least=0, most=0)  # a read: its success writes no event


def assert_one_event_per_change(race: Race, expected: dict[str, Writes]) -> dict[str, list[AuditEvent]]:
    """Every success wrote its action the expected number of times and nothing else; every failure wrote
    nothing but a refusal record. Returns the events by request id for further checks."""
    events = events_by_request(race)
    problems = []
    for call in race.calls:
        writes = [event for event in events.get(call.request_id, []) if event.action not in REFUSAL_ACTIONS]
        if call.ok:
            want = expected[call.op]
            count = sum(1 for event in writes if event.action == want.action)
            others = Counter(event.action for event in writes if event.action != want.action)
            if not want.least <= count <= want.most or any(
                action not in want.optional or times > 1 for action, times in others.items()
            ):
                problems.append(f"{call}: {count} x {want.action}, others {others}")
        elif writes:
            problems.append(f"{call}: a failure wrote {[event.action for event in writes]}")
    assert not problems, f"{len(problems)} calls with the wrong audit events:\n" + "\n".join(problems[:20])
    return events


def assert_audit_chain_verifies() -> None:
    output = StringIO()
    call_command("verify_audit", stdout=output)
    assert "audit chain OK" in output.getvalue()


def signed_in_headers(user) -> dict[str, str]:
    """Cookie and CSRF headers of a web session for `user`. The cookies are sent as a header: outside DEBUG
    they are Secure, and a client's cookie jar keeps those off plain-HTTP requests to the live server."""
    client = Client()
    client.force_login(user)
    csrf_secret = get_random_string(32)
    return {
        "Cookie": f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}; "
        f"{settings.CSRF_COOKIE_NAME}={csrf_secret}",
        "X-CSRFToken": csrf_secret,
    }


def page_messages(call: Call) -> list[tuple[str, str]]:
    """The (level, text) messages a page's redirect carries in its messages cookie."""
    cookies = SimpleCookie()
    for header in call.meta["response"].headers.get_list("set-cookie"):
        cookies.load(header)
    if "messages" not in cookies:
        return []
    stored = CookieStorage(HttpRequest())._decode(cookies["messages"].value) or []
    return [(message.level_tag, message.message) for message in stored]
