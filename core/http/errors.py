"""The API's error shape: JSON with `detail`, field errors for bad input. The one place domain errors become HTTP,
and the one place a database that cannot serve the request becomes a 503."""

from __future__ import annotations

import logging
import sys

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, DataError, InterfaceError, OperationalError
from django.db.models import ProtectedError
from django.http import Http404, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from core.exceptions import ApplicationError, Conflict, InvalidInput, LimitReached, NotPermitted, ObjectNotFound

logger = logging.getLogger(__name__)

# The DB-API's errors "related to the database's operation and not necessarily under the control of the
# programmer": a refused or dropped connection, a server shutting down or starting up, too many connections, and
# the transient ones (a deadlock, a serialization failure, a lock or statement timeout). The request may succeed
# if retried shortly, so the answer is a 503 with Retry-After, never a 500.
DATABASE_UNAVAILABLE_ERRORS = (OperationalError, InterfaceError)
# A write on a server that has become read-only (a standby after a failover) is as unavailable: SQLSTATE 25006.
READ_ONLY_SQL_TRANSACTION = "25006"
RETRY_AFTER_SECONDS = 5
DATABASE_UNAVAILABLE_DETAIL = "Service temporarily unavailable: the database could not serve this request. Try again."


def _sqlstate(error: BaseException) -> str | None:
    """The server's SQLSTATE, from the driver's error Django wraps; None for errors raised before any reply."""
    return getattr(error.__cause__, "sqlstate", None) or getattr(error, "sqlstate", None)


def is_api_path(path: str) -> bool:
    return path.startswith("/api/")


def loggable(text: str, limit: int = 300) -> str:
    """Request-controlled text for a log line: escaped (a %0A in a path must not forge a line) and capped."""
    return text[:limit].encode("unicode_escape").decode("ascii")


def is_database_unavailable(error: BaseException | None) -> bool:
    if isinstance(error, DATABASE_UNAVAILABLE_ERRORS):
        return True
    return isinstance(error, DatabaseError) and _sqlstate(error) == READ_ONLY_SQL_TRANSACTION


def _database_error_summary(error: BaseException) -> str:
    """The error's class, SQLSTATE and first line, for the log: never a password, never a traceback."""
    sqlstate = _sqlstate(error)
    lines = str(error).strip().splitlines()
    message = lines[0] if lines else ""
    for database in settings.DATABASES.values():
        if database.get("PASSWORD"):
            message = message.replace(database["PASSWORD"], "***")
    return f"{type(error).__name__}{f' {sqlstate}' if sqlstate else ''}: {loggable(message, 200)}"


def service_unavailable(request, detail: str) -> JsonResponse:
    """A JSON 503 naming the request id, with Retry-After. The caller has logged the reason."""
    response = JsonResponse({"detail": detail, "request_id": getattr(request, "request_id", "")}, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    # The caller's warning is the one line for this request: Django's own "Service Unavailable" error
    # line (and, from handler500, its traceback) would repeat it for every request of an outage.
    response._has_been_logged = True
    return response


def database_unavailable(request, error: BaseException, *, page: bool = False) -> HttpResponse:
    """The answer to any request the database failed: JSON, or a plain HTML page for a web page."""
    request_id = getattr(request, "request_id", "")
    logger.warning(
        "Database unavailable: %s %s answered 503 (request %s): %s",
        loggable(request.method or ""),
        loggable(request.path),
        request_id,
        _database_error_summary(error),
    )
    if not page:
        return service_unavailable(request, DATABASE_UNAVAILABLE_DETAIL)
    # Rendered without the request: the context processors would look up the session and user again.
    body = render_to_string("503.html", {"request_id": request_id, "retry_after": RETRY_AFTER_SECONDS})
    response = HttpResponse(body, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response._has_been_logged = True
    return response


# Each domain error's status. The base class (a refusal no subclass names) is bad input.
STATUS_BY_ERROR: tuple[tuple[type[ApplicationError], int], ...] = (
    (ObjectNotFound, status.HTTP_404_NOT_FOUND),
    (NotPermitted, status.HTTP_403_FORBIDDEN),
    (Conflict, status.HTTP_409_CONFLICT),
    (LimitReached, status.HTTP_429_TOO_MANY_REQUESTS),
    (InvalidInput, status.HTTP_400_BAD_REQUEST),
    (ApplicationError, status.HTTP_400_BAD_REQUEST),
)


def status_for(error: ApplicationError) -> int:
    return next(code for kind, code in STATUS_BY_ERROR if isinstance(error, kind))


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "payload_too_large"


def api_exception_handler(exc, context):
    if is_database_unavailable(exc):
        return database_unavailable(context["request"], exc)
    if isinstance(exc, ApplicationError):
        code = status_for(exc)
        body = {"detail": exc.detail, **exc.extra}
        if exc.field and code == status.HTTP_400_BAD_REQUEST:
            body[exc.field] = [exc.detail]
        response = Response(body, status=code)
        if isinstance(exc, LimitReached):
            response["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(detail=exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    elif isinstance(exc, DataError):
        # The database refused a value the serializers let through (a NUL byte in a path or query
        # parameter, a number out of range): bad input, not a server fault.
        return Response({"detail": "Invalid input."}, status=status.HTTP_400_BAD_REQUEST)
    elif isinstance(exc, ProtectedError):
        return Response({"detail": "The object is in use and cannot be deleted."}, status=status.HTTP_400_BAD_REQUEST)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError) and not isinstance(response.data, dict):
        response.data = {"detail": "Invalid input.", "errors": response.data}
    elif isinstance(exc, exceptions.ValidationError) and "detail" not in response.data:
        response.data = {"detail": "Invalid input.", **response.data}
    return response


@csrf_exempt
def api_not_found(request, *args, **kwargs):
    """Catch-all for unknown /api/ paths: JSON, even with DEBUG on, and for every method.

    Exempt from CSRF so a POST to an unknown path is a JSON 404, not the CSRF HTML page.
    """
    return JsonResponse({"detail": "Not found."}, status=404)


def csrf_failure(request, reason: str = ""):
    """CSRF_FAILURE_VIEW: JSON under /api/ (a browser session without its CSRF token), else Django's page."""
    from django.views.csrf import csrf_failure as django_csrf_failure

    if request.path.startswith("/api/"):
        return JsonResponse({"detail": f"CSRF Failed: {reason}"}, status=403)
    return django_csrf_failure(request, reason=reason)


def handler404(request, exception=None):
    from django.views.defaults import page_not_found

    if request.path.startswith("/api/"):
        return api_not_found(request)
    return page_not_found(request, exception)


def _served_by_api_view(request) -> bool:
    """True for a path an API view serves (under /api/, and the health endpoints): its errors are JSON too."""
    from django.urls import Resolver404, resolve
    from rest_framework.views import APIView

    try:
        view_class = getattr(resolve(request.path_info).func, "view_class", None)
    except Resolver404:
        return False
    return isinstance(view_class, type) and issubclass(view_class, APIView)


def handler400(request, exception=None):
    """DisallowedHost and other SuspiciousOperations raised outside a view: JSON under /api/ and wherever an API
    view answers (a load balancer's health check with a Host the server does not serve gets JSON, as declared)."""
    from django.views.defaults import bad_request

    if request.path.startswith("/api/") or _served_by_api_view(request):
        return JsonResponse({"detail": "Bad request."}, status=400)
    return bad_request(request, exception)


def handler500(request):
    """Errors raised outside a view (a session saved by its middleware, say) end here, inside Django's except
    block: a database that cannot be reached is still a 503."""
    from django.views.defaults import server_error

    error = sys.exc_info()[1]
    if is_database_unavailable(error):
        return database_unavailable(request, error, page=not is_api_path(request.path))
    if is_api_path(request.path):
        return JsonResponse({"detail": "Internal server error."}, status=500)
    return server_error(request)
