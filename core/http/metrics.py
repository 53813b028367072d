"""The HTTP side of the metrics (core/metrics.py): GET /metrics for Prometheus, the middleware that times every
request, and the counting of agent requests by outcome, called by the agent token and scope checks."""

from __future__ import annotations

import hmac
import time

from django.conf import settings
from django.http import Http404, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from core import metrics

METRICS_TOKEN_REQUIRED = "Send the metrics token: 'Authorization: Bearer <CODERAUTH_METRICS_TOKEN>'."


def _bearer_token(request) -> str:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


@csrf_exempt  # a scraper sends no CSRF token; without this a POST would get the CSRF page instead of our answer
def metrics_view(request):
    """Every series in Prometheus's text format, for the holder of CODERAUTH_METRICS_TOKEN.

    Without a token configured the route does not exist: 404 for every request, as for any unknown path. The
    token is compared in constant time, so a wrong guess learns nothing from how long the refusal took."""
    expected = settings.CODERAUTH_METRICS_TOKEN
    if not expected:
        raise Http404
    if not hmac.compare_digest(_bearer_token(request).encode(), expected.encode()):
        response = JsonResponse({"detail": METRICS_TOKEN_REQUIRED}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if request.method not in ("GET", "HEAD"):
        response = JsonResponse({"detail": f'Method "{request.method}" not allowed.'}, status=405)
        response["Allow"] = "GET, HEAD"
        return response
    # The classic text format (0.0.4), which every Prometheus version reads.
    return HttpResponse(metrics.exposition(), content_type=CONTENT_TYPE_PLAIN_0_0_4)


class RequestMetricsMiddleware:
    """Times every request that reaches the app, by the URL name that served it (`namespace:name`, never the
    path) and the status class of its answer. A streamed body (an audit export) is timed to its first byte."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = request.resolver_match
        metrics.http_request_served(
            # A catch-all without a name (the JSON 404 under /api/, the admin's) is no route either.
            route=match.view_name if match is not None and match.url_name else metrics.UNMATCHED_ROUTE,
            status=response.status_code,
            seconds=time.perf_counter() - started,
        )
        return response


def _agent_request_decided(request, outcome: str) -> None:
    match = getattr(request, "resolver_match", None)  # None too for a request made outside Django's handler
    metrics.agent_request_decided(route=match.url_name if match is not None else None, outcome=outcome)


def agent_request_allowed(request) -> None:
    """The agent token is good and its scopes, within the mode, hold the route's scope."""
    _agent_request_decided(request, metrics.ALLOWED)


def agent_request_denied(request) -> None:
    """A good agent token without the route's scope, by its mode or its own scopes: the 403."""
    _agent_request_decided(request, metrics.DENIED)


def agent_request_rejected(request) -> None:
    """No agent token, or one that is malformed, unknown, revoked or expired: the 401."""
    _agent_request_decided(request, metrics.REJECTED)
