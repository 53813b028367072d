"""Liveness and readiness for load balancers and orchestrators: GET /healthz and GET /readyz (docs/operations.md).

Both are public and cheap. /healthz touches nothing but the process, so an outage of the database never gets
healthy processes restarted; /readyz runs the checks named in CODERAUTH_READINESS_CHECKS (dotted paths, as
settings name every class), so that core imports no app.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError
from django.utils.module_loading import import_string
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from core.http.errors import is_database_unavailable, service_unavailable
from core.http.openapi import ServiceUnavailableSerializer

logger = logging.getLogger(__name__)

NOT_READY_DETAIL = "Not ready: the audit log cannot be written."


class HealthApi(APIView):
    """Public, unthrottled, JSON only; no authentication, so no credential or session is ever looked up."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []  # a budget kept in the database would make liveness depend on it
    http_method_names = ["get", "head", "options"]


class HealthzApi(HealthApi):
    # Never touches the database: the schema declares no 503 here (core/http/openapi.py).
    uses_database = False

    @extend_schema(
        operation_id="healthz",
        tags=["health"],
        summary="Liveness: the process answers.",
        description="No database access, so a database outage does not fail it.",
        responses={200: inline_serializer("Healthz", fields={"status": serializers.CharField()})},
    )
    def get(self, request):
        return Response({"status": "ok"})


class ReadyzApi(HealthApi):
    @extend_schema(
        operation_id="readyz",
        tags=["health"],
        summary="Readiness: the database answers and the audit log can be written.",
        description="Writes nothing. A 503 means: send no traffic here for now.",
        responses={
            200: inline_serializer("Readyz", fields={"status": serializers.CharField()}),
            503: OpenApiResponse(
                ServiceUnavailableSerializer,
                description="The database cannot be reached, or the audit log cannot be written.",
            ),
        },
    )
    def get(self, request):
        problems: list[str] = []
        try:
            for check in settings.CODERAUTH_READINESS_CHECKS:
                problems += import_string(check)()
        except DatabaseError as error:
            if is_database_unavailable(error):
                raise  # the exception handler's 503, logged like every other (core/http/errors.py)
            # The database answers but the schema is not there (migrations pending), or the like.
            problems.append(f"the readiness query failed ({type(error).__name__})")
        if problems:
            logger.warning("Not ready (request %s): %s", getattr(request, "request_id", ""), "; ".join(problems))
            return service_unavailable(request, NOT_READY_DETAIL)
        return Response({"status": "ready"})
