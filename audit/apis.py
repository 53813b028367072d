"""Auditors' routes: the audit log, paged and exported. Read-only."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import exports, selectors
from audit.permissions import IsAdminOrAuditor
from core.http.openapi import errors

FILTER_PARAMETERS = [
    OpenApiParameter(
        "action", str, many=True, explode=True, description="Action name; repeat it (or separate with commas)."
    ),
    OpenApiParameter("actor", str, description="A username, or an agent id for agent actors."),
    OpenApiParameter("workspace", OpenApiTypes.UUID, description="Workspace id."),
    OpenApiParameter("agent", OpenApiTypes.UUID, description="Agent id."),
    OpenApiParameter("since", OpenApiTypes.DATETIME, description="ISO 8601, inclusive."),
    OpenApiParameter("until", OpenApiTypes.DATETIME, description="ISO 8601, exclusive."),
]


class AuditEventOutputSerializer(serializers.Serializer):
    """One audit row; the same fields as the CSV columns and JSONL keys (audit/chain.py FIELDS)."""

    id = serializers.IntegerField()
    time = serializers.DateTimeField()
    action = serializers.CharField()
    actor_type = serializers.CharField()
    actor = serializers.CharField()
    workspace_id = serializers.UUIDField(allow_null=True)
    agent_id = serializers.UUIDField(allow_null=True)
    details = serializers.JSONField()
    ip = serializers.CharField(allow_null=True)
    user_agent = serializers.CharField()
    request_id = serializers.CharField()
    prev_hash = serializers.CharField()
    hash = serializers.CharField()


class AuditorApi(APIView):
    """Base of the auditors' routes. `format` names a file format here, not a DRF renderer, so errors stay JSON."""

    permission_classes = [IsAuthenticated, IsAdminOrAuditor]

    def perform_content_negotiation(self, request, force=False):
        renderer = JSONRenderer()
        return renderer, renderer.media_type


class AuditEventListApi(AuditorApi):
    class InputSerializer(serializers.Serializer):
        page_size = serializers.IntegerField(
            min_value=1, max_value=selectors.MAX_PAGE_SIZE, default=selectors.DEFAULT_PAGE_SIZE
        )
        cursor = serializers.CharField(max_length=200, required=False, allow_blank=True)

    class OutputSerializer(serializers.Serializer):
        results = AuditEventOutputSerializer(many=True)
        next = serializers.URLField(allow_null=True, help_text="The next page (older events), or null on the last.")

    @extend_schema(
        operation_id="audit_list",
        parameters=[
            *FILTER_PARAMETERS,
            OpenApiParameter("page_size", int, description=f"1 to {selectors.MAX_PAGE_SIZE}, default 50."),
            OpenApiParameter("cursor", str, description="Opaque; taken from `next`."),
        ],
        responses={200: OutputSerializer, **errors(400, 401, 403)},
    )
    def get(self, request):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        filters = selectors.audit_filters_from_query(request.query_params)
        events, next_cursor = selectors.audit_event_page(
            filters=filters,
            cursor=params.validated_data.get("cursor") or None,
            page_size=params.validated_data["page_size"],
        )
        next_url = None
        if next_cursor:
            query = request.query_params.copy()
            query["cursor"] = next_cursor
            next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
        return Response({"results": AuditEventOutputSerializer(events, many=True).data, "next": next_url})


class AuditEventDetailApi(AuditorApi):
    @extend_schema(
        operation_id="audit_event_retrieve", responses={200: AuditEventOutputSerializer, **errors(401, 403, 404)}
    )
    def get(self, request, event_id: int):
        return Response(AuditEventOutputSerializer(selectors.audit_event_get(event_id=event_id)).data)


class ExportFormatSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=exports.EXPORT_FORMATS, default="csv")


EXPORT_FORMAT_PARAMETER = OpenApiParameter(
    "format",
    str,
    enum=list(exports.EXPORT_FORMATS),
    default="csv",
    description="File format: csv, jsonl (the audit rows as JSON lines) or ocsf (OCSF events as JSON lines).",
)


class AuditExportApi(AuditorApi):
    @extend_schema(
        parameters=[EXPORT_FORMAT_PARAMETER, *FILTER_PARAMETERS],
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR,
                description="Streamed CSV, oldest first, header row first; formula-looking cells prefixed with '.",
            ),
            (200, "application/x-ndjson"): OpenApiResponse(
                OpenApiTypes.STR,
                description=(
                    "Streamed JSON lines, oldest first: the audit rows (jsonl) or OCSF 1.3.0 events (ocsf); "
                    'the last line is {"manifest": {...}}.'
                ),
            ),
            **errors(400, 401, 403, 429),
        },
        description=(
            "At most CODERAUTH_EXPORTS_PER_USER exports per user and CODERAUTH_EXPORTS_TOTAL in all run at once "
            "(manifests computed included); beyond, 429 with Retry-After and `code` exports_per_user or "
            "exports_total, before any byte of the file."
        ),
    )
    def get(self, request):
        params = ExportFormatSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        filters = selectors.audit_filters_from_query(request.query_params)
        return exports.audit_export_response(
            filters=filters,
            export_format=params.validated_data["format"],
            user_id=request.user.pk,
            # gunicorn's socket to the client: the export sets its send timeout (the stall cut-off).
            client_socket=request.META.get("gunicorn.socket"),
        )


class AuditExportManifestApi(AuditorApi):
    class OutputSerializer(serializers.Serializer):
        class ManifestSerializer(serializers.Serializer):
            format = serializers.CharField()
            rows = serializers.IntegerField()
            sha256 = serializers.CharField()
            since = serializers.DateTimeField(allow_null=True)
            until = serializers.DateTimeField()
            filters = serializers.DictField()

            class Meta:
                ref_name = "AuditExportManifestBody"

        manifest = ManifestSerializer()

    @extend_schema(
        parameters=[EXPORT_FORMAT_PARAMETER, *FILTER_PARAMETERS],
        responses={200: OutputSerializer, **errors(400, 401, 403, 429)},
        description=(
            "Row count and SHA-256 of the export with the same parameters. Pass the export's `until` "
            "(its X-Audit-Export-Until header) so both cover the same rows. Answered from the manifest recorded "
            "when that export finished; otherwise computed once, taking an export slot (429 when none is free)."
        ),
    )
    def get(self, request):
        params = ExportFormatSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        filters = selectors.audit_filters_from_query(request.query_params)
        manifest = exports.audit_export_manifest_get(
            filters=filters, export_format=params.validated_data["format"], user_id=request.user.pk
        )
        return Response(manifest)
