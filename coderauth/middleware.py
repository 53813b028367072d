"""Request id and audit context for every request; JSON errors for everything under /api/."""

from __future__ import annotations

import logging
import re
import uuid

from django.http import JsonResponse

from coderauth import request_context

logger = logging.getLogger(__name__)
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def is_api_path(path: str) -> bool:
    return path.startswith("/api/")


class RequestContextMiddleware:
    """Tags each request with an id (kept from X-Request-ID when it is safe) and remembers its origin."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        context = request_context.RequestContext(
            ip=request.META.get("REMOTE_ADDR") or None,
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


class ApiErrorMiddleware:
    """An unhandled error under /api/ becomes a JSON 500 that names the request id, never a stack trace."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not is_api_path(request.path):
            return None
        logger.exception("Unhandled error on %s %s", request.method, request.path)
        return JsonResponse(
            {"detail": "Internal server error.", "request_id": getattr(request, "request_id", "")}, status=500
        )
