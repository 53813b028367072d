"""Prometheus metrics: every series coderauth exports, and the text a scrape reads (served at GET /metrics by
core/http/metrics.py; docs/operations.md, "Metrics").

Under gunicorn started with coderauth/gunicorn.py, PROMETHEUS_MULTIPROC_DIR names a directory where each worker
counts in files of its own, and a scrape sums them all, whichever worker answers it. Without it (runserver, the
tests, a management command) this process counts in its own memory.

Label values come from fixed sets only, never from a request: no token, username, path or id, so the number of
series stays bounded whatever clients send.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable

from django.conf import settings
from django.db import transaction
from django.utils.module_loading import import_string
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

logger = logging.getLogger(__name__)

# Read by prometheus_client too, when it is first imported: both see the environment the process started with.
MULTIPROCESS_DIRECTORY = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
if not MULTIPROCESS_DIRECTORY and os.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn"):
    logger.warning(
        "gunicorn runs without coderauth/gunicorn.py (-c python:coderauth.gunicorn): each worker counts on its "
        "own, so /metrics shows only the worker that answers the scrape."
    )

# The outcome of an agent request: through the token and scope checks, refused by the mode or the token's
# scopes (403), or refused its token (401: missing, malformed, unknown, revoked or expired).
ALLOWED = "allowed"
DENIED = "denied"
REJECTED = "rejected"
AGENT_OUTCOMES = (ALLOWED, DENIED, REJECTED)
# An agent request whose route has no name (a view called outside the URL configuration).
OTHER_ROUTE = "other"
# A request no named route served: an unknown path, a catch-all without a name.
UNMATCHED_ROUTE = "unmatched"
# Indexed by status // 100.
STATUS_CLASSES = ("", "1xx", "2xx", "3xx", "4xx", "5xx")

TOKEN_AGENT = "agent"  # issued by a user for an agent
TOKEN_CHILD = "child"  # minted by an agent with its own token
TOKEN_ROTATED = "rotated"  # the successor of a rotated child token
TOKEN_USER_SESSION = "user_session"  # an API login
TOKEN_USER_API = "user_api"  # a personal API token
TOKEN_KINDS = (TOKEN_AGENT, TOKEN_CHILD, TOKEN_ROTATED, TOKEN_USER_SESSION, TOKEN_USER_API)

# The same text in both modes: multiprocess mode has no `_created` series.
disable_created_metrics()
REGISTRY = CollectorRegistry()

_agent_requests = Counter(
    "coderauth_agent_requests",
    "Agent requests by agent route and outcome: allowed, denied (403, mode or token scopes), rejected (401).",
    ["route", "outcome"],
    registry=REGISTRY,
)
_request_duration = Histogram(
    "coderauth_http_request_duration_seconds",
    "Time to answer a request (to its first byte), by URL name and status class.",
    ["route", "status_class"],
    # The agent routes answer in about a millisecond: finer buckets at the low end than prometheus_client's.
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
_audit_events = Counter(
    "coderauth_audit_events",
    "Audit events committed, by action.",
    ["action"],
    registry=REGISTRY,
)
_tokens_issued = Counter(
    "coderauth_tokens_issued",
    "Tokens issued and committed, by kind: agent, child, rotated, user_session, user_api.",
    ["kind"],
    registry=REGISTRY,
)


class _Children(dict):
    """A metric's children by label values, bound once per process: afterwards a request costs one dict lookup,
    not prometheus_client's labels() (a lock, checks, a tuple). `allowed` holds, per label, its fixed set of
    values, or None where the caller draws it from a fixed set of its own (URL names, audit actions)."""

    def __init__(self, metric, allowed: tuple[tuple[str, ...] | None, ...]):
        super().__init__()
        self._metric = metric
        self._allowed = allowed

    def __missing__(self, values: tuple[str, ...]):
        for value, allowed in zip(values, self._allowed, strict=True):
            if allowed is not None and value not in allowed:
                raise ValueError(f"{value!r} is not one of {allowed}")
        child = self[values] = self._metric.labels(*values)
        return child


_agent_request_children = _Children(_agent_requests, (None, AGENT_OUTCOMES))
_request_duration_children = _Children(_request_duration, (None, STATUS_CLASSES[1:]))
_audit_event_children = _Children(_audit_events, (None,))
_token_issued_children = _Children(_tokens_issued, (TOKEN_KINDS,))


def agent_request_decided(*, route: str | None, outcome: str) -> None:
    """An agent request passed or failed the token and scope checks. `route` is the agent route's URL name."""
    _agent_request_children[(route or OTHER_ROUTE, outcome)].inc()


def http_request_served(*, route: str, status: int, seconds: float) -> None:
    _request_duration_children[(route, STATUS_CLASSES[status // 100])].observe(seconds)


def audit_event_recorded(action: str) -> None:
    """Called by audit_record with an action from audit/actions.py. Counted when the transaction commits, so an
    event rolled back with its change is not counted."""
    transaction.on_commit(_audit_event_children[(action,)].inc, robust=True)


def token_issued(*, kind: str) -> None:
    """Called by the service that issues a token, inside its transaction; counted when it commits."""
    transaction.on_commit(_token_issued_children[(kind,)].inc, robust=True)


class _ScrapeTimeCollector:
    """One of CODERAUTH_METRICS_COLLECTORS: a function returning metric families, run at each scrape. For figures
    that live in the database, read once per scrape instead of counted by every process. A failing one is
    logged and left out, so the counters above are still scraped."""

    def __init__(self, path: str):
        self.path = path
        self.function: Callable[[], Iterable[Metric]] = import_string(path)

    def collect(self) -> Iterable[Metric]:
        try:
            return list(self.function())
        except Exception as error:
            logger.warning("Metrics collector %s failed: %s", self.path, type(error).__name__)
            return []


def exposition() -> bytes:
    """Every series in Prometheus's text format: this process's or, in multiprocess mode, every worker's, then
    those of the scrape-time collectors."""
    registry = CollectorRegistry()
    if MULTIPROCESS_DIRECTORY:
        MultiProcessCollector(registry, path=MULTIPROCESS_DIRECTORY)
    else:
        registry.register(REGISTRY)
    for path in settings.CODERAUTH_METRICS_COLLECTORS:
        registry.register(_ScrapeTimeCollector(path))
    return generate_latest(registry)
