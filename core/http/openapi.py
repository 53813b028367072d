"""OpenAPI pieces shared by every app: error bodies and declared statuses. The security schemes live with the
authentication classes they describe (agents/authentication.py)."""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

ErrorSerializer = inline_serializer("Error", fields={"detail": serializers.CharField()})
ScopeDeniedSerializer = inline_serializer(
    "ScopeDenied",
    fields={
        "detail": serializers.CharField(),
        "required_scope": serializers.CharField(),
        "permission_mode": serializers.CharField(),
        "denied_by": serializers.ChoiceField(
            choices=["permission_mode", "token"],
            help_text="permission_mode: the mode lacks the scope; token: the mode allows it, the token lacks it.",
        ),
    },
)
ServiceUnavailableSerializer = inline_serializer(
    "ServiceUnavailable", fields={"detail": serializers.CharField(), "request_id": serializers.CharField()}
)

_ERROR_DESCRIPTIONS = {
    400: "Invalid input; the body names the fields.",
    401: "Missing, malformed, unknown, expired or revoked credentials, or a token of the wrong kind.",
    403: "Authenticated but not allowed.",
    404: "Not found, or not visible to this principal.",
    409: "Conflicts with the current state: a cap on what may exist at once is reached.",
    413: "Request body too large.",
    429: "Too many requests.",
    503: "The database cannot serve the request right now; retry after Retry-After seconds.",
}


def errors(*codes: int, scope_denied: bool = False) -> dict[int, OpenApiResponse]:
    """Declared error responses for extend_schema(responses=...)."""
    responses = {}
    for code in codes:
        serializer = ScopeDeniedSerializer if (code == 403 and scope_denied) else ErrorSerializer
        description = _ERROR_DESCRIPTIONS[code]
        if code == 403 and scope_denied:
            description = "The token's scopes ∩ the agent's permission mode lack the route's scope."
        responses[code] = OpenApiResponse(serializer, description=description)
    return responses


class AutoSchema(SpectacularAutoSchema):
    """Names nested serializers after their view, so every `Api.InputSerializer` gets its own component.

    `UserLoginApi.InputSerializer` becomes `UserLoginInput` (and `UserLoginInputRequest` on the request side)
    instead of colliding with every other view's `InputSerializer`.
    """

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        """Declare 413 wherever a body is accepted (ApiErrorMiddleware refuses any body over the limit), and 403
        on every session-cookie write (CSRF)."""
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if not operation:
            return operation
        if "requestBody" in operation and "413" not in operation["responses"]:
            self._declare_error(operation, 413, _ERROR_DESCRIPTIONS[413])
        # A write with the session cookie and no valid CSRF token is refused with 403 before the view runs.
        cookie_auth = any("cookieAuth" in requirement for requirement in operation.get("security", []))
        if cookie_auth and method.upper() not in ("GET", "HEAD", "OPTIONS") and "403" not in operation["responses"]:
            self._declare_error(operation, 403, "CSRF check failed: a session-cookie write without a valid CSRF token.")
        # A throttled view answers 429 with Retry-After once its budget is spent (core/http/throttles.py).
        if getattr(self.view, "throttle_classes", None) and "429" not in operation["responses"]:
            self._declare_error(operation, 429, _ERROR_DESCRIPTIONS[429])
        # Any view that reads or writes answers 503 while the database cannot be reached (core/http/errors.py).
        if getattr(self.view, "uses_database", True):
            self._declare_unavailable(operation)
        # Any request can be refused before its view runs: a Host header the server does not serve, a NUL in the
        # URL (core/http/middleware.py, core/http/errors.py). Found by the schema fuzzing (tests/test_schema_fuzz.py).
        if "400" not in operation["responses"]:
            self._declare_error(operation, 400, "Malformed request: a Host not served here, or a NUL in the URL.")
        return operation

    def _declare_unavailable(self, operation) -> None:
        if "503" not in operation["responses"]:
            body = self.resolve_serializer(ServiceUnavailableSerializer, "response")
            operation["responses"]["503"] = {
                "description": _ERROR_DESCRIPTIONS[503],
                "content": {"application/json": {"schema": body.ref}},
            }
        operation["responses"]["503"]["headers"] = {
            "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait before trying again."}
        }

    def _declare_error(self, operation, code: int, description: str) -> None:
        error = self.resolve_serializer(ErrorSerializer, "response")
        operation["responses"][str(code)] = {
            "description": description,
            "content": {"application/json": {"schema": error.ref}},
        }

    def get_serializer_name(self, serializer, direction) -> str:
        outer, _, inner = type(serializer).__qualname__.rpartition(".")
        if not outer or "<locals>" in outer:
            return super().get_serializer_name(serializer, direction)
        outer = outer.rpartition(".")[2].removesuffix("Api")
        return outer + inner.removesuffix("Serializer")
