"""Request id and audit context for every request; JSON errors for everything under /api/, the site's 404 page
for a page whose object is not found, and a 503 (JSON under /api/, a plain page elsewhere) whenever the database
cannot serve the request."""

from __future__ import annotations

import ipaddress
import logging
import re
import uuid

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, JsonResponse
from django.views.defaults import page_not_found
from rest_framework.throttling import BaseThrottle

from core import request_context
from core.exceptions import ObjectNotFound
from core.http.errors import database_unavailable, is_api_path, is_database_unavailable, loggable

logger = logging.getLogger(__name__)
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def client_ip(request) -> str | None:
    """The client's address for audit rows: DRF's own rule for NUM_PROXIES (`get_ident`, what its throttles
    key on), so the two never disagree. Anything that is not an IP address falls back to REMOTE_ADDR rather
    than reaching the inet column."""
    remote_addr = request.META.get("REMOTE_ADDR") or None
    try:
        return str(ipaddress.ip_address(BaseThrottle().get_ident(request)))
    except ValueError:
        return remote_addr


class RequestContextMiddleware:
    """Tags each request with an id (kept from X-Request-ID when it is safe) and remembers its origin."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        context = request_context.RequestContext(
            ip=client_ip(request),
            user_agent=request.headers.get("User-Agent", "")[:500],
            request_id=request_id,
        )
        token = request_context.set_current(context)
        try:
            response = self.get_response(request)
        finally:
            request_context.reset(token)
        response["X-Request-ID"] = request_id
        return response


def _declared_length(request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


class ApiErrorMiddleware:
    """JSON errors under /api/: 413 for oversized bodies, 400 for NUL in the URL, and a JSON 500 naming
    the request id for unhandled errors, never a stack trace. On every path, a 503 whenever the database
    cannot serve the request (the session lookup of a web page included)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # DRF's parsers read the stream directly, bypassing Django's DATA_UPLOAD_MAX_MEMORY_SIZE check
        # (which only guards request.body and request.POST): enforce it before any view parses JSON.
        # A body without Content-Length is read as empty by Django's WSGI handler.
        if not is_api_path(request.path):
            return self.get_response(request)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and _declared_length(request) > limit:
            return JsonResponse({"detail": f"Request body too large (at most {limit} bytes)."}, status=413)
        # PostgreSQL text cannot hold NUL: a NUL in a path or query parameter would reach a lookup and
        # fail there as a server error. It is never valid input, so refuse it up front.
        query = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path or "\x00" in query or "%00" in query:
            return JsonResponse({"detail": "NUL characters are not allowed in URLs."}, status=400)
        return self.get_response(request)

    def process_exception(self, request, exception):
        if is_database_unavailable(exception):
            return database_unavailable(request, exception, page=not is_api_path(request.path))
        if not is_api_path(request.path):
            # A page asked a selector for something the user may not see: the site's 404 page.
            if isinstance(exception, ObjectNotFound):
                return page_not_found(request, Http404(exception.detail))
            return None
        if isinstance(exception, RequestDataTooBig):
            return JsonResponse({"detail": "Request body too large."}, status=413)
        if isinstance(exception, SuspiciousOperation):
            # Too many query parameters or fields, a bad multipart body...: the client's fault, not ours.
            logger.warning(
                "Refused %s %s: %s", loggable(request.method), loggable(request.path), type(exception).__name__
            )
            return JsonResponse({"detail": "Bad request."}, status=400)
        logger.exception("Unhandled error on %s %s", loggable(request.method), loggable(request.path))
        return JsonResponse(
            {"detail": "Internal server error.", "request_id": getattr(request, "request_id", "")}, status=500
        )
