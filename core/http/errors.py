"""The API's error shape: JSON with `detail`, field errors for bad input. The one place domain errors become HTTP."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError
from django.db.models import ProtectedError
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from core.exceptions import ApplicationError, InvalidInput, NotPermitted, ObjectNotFound

# Each domain error's status. The base class (a refusal no subclass names) is bad input.
STATUS_BY_ERROR: tuple[tuple[type[ApplicationError], int], ...] = (
    (ObjectNotFound, status.HTTP_404_NOT_FOUND),
    (NotPermitted, status.HTTP_403_FORBIDDEN),
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
    if isinstance(exc, ApplicationError):
        code = status_for(exc)
        body = {"detail": exc.detail, **exc.extra}
        if exc.field and code == status.HTTP_400_BAD_REQUEST:
            body[exc.field] = [exc.detail]
        return Response(body, status=code)
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


def handler400(request, exception=None):
    """DisallowedHost and other SuspiciousOperations raised outside a view: JSON under /api/."""
    from django.views.defaults import bad_request

    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Bad request."}, status=400)
    return bad_request(request, exception)


def handler500(request):
    from django.views.defaults import server_error

    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Internal server error."}, status=500)
    return server_error(request)
