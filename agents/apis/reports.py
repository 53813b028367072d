"""The least-privilege report for admins and auditors, as JSON or a CSV download."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers

from agents.selectors.reports import REPORT_COLUMNS, permissions_report_page, permissions_report_stream
from audit.apis import AuditorApi
from audit.exports import csv_attachment
from core.http.openapi import errors
from core.http.pagination import page_parameters, page_request, paged, paged_response

REPORT_FORMATS = ("csv", "json")


class PermissionsReportApi(AuditorApi):
    """Per agent: what it could reach, what it did reach, and whether it can be tightened safely."""

    class InputSerializer(serializers.Serializer):
        format = serializers.ChoiceField(choices=REPORT_FORMATS, default="json")
        unused_days = serializers.IntegerField(min_value=1, max_value=3650, default=30)

    class OutputSerializer(serializers.Serializer):
        agent_id = serializers.UUIDField()
        agent_name = serializers.CharField()
        workspace_id = serializers.UUIDField()
        workspace_name = serializers.CharField()
        owner = serializers.CharField()
        workspace_permission_mode = serializers.CharField()
        agent_permission_mode = serializers.CharField(allow_null=True)
        effective_permission_mode = serializers.CharField()
        allowed_scopes = serializers.ListField(child=serializers.CharField())
        live_tokens = serializers.IntegerField()
        last_used_at = serializers.DateTimeField(allow_null=True)
        last_user_data_access_at = serializers.DateTimeField(allow_null=True)
        last_gitsshkey_access_at = serializers.DateTimeField(allow_null=True)
        last_external_auth_access_at = serializers.DateTimeField(allow_null=True)
        elevations = serializers.IntegerField(
            help_text="Access requests approved for the agent in the last `unused_days` days, lapsed or revoked since."
        )
        elevated_scopes = serializers.ListField(
            child=serializers.CharField(), help_text="The scopes those approvals granted: the case for a custom mode."
        )
        recommendation = serializers.CharField(help_text='"no-user-data" when the agent can be tightened safely.')

    @extend_schema(
        operation_id="reports_permissions_list",
        parameters=[
            OpenApiParameter("format", str, enum=list(REPORT_FORMATS), default="json"),
            OpenApiParameter("unused_days", int, default=30, description="N: no user-data read in N days."),
            *page_parameters(),
        ],
        responses={
            200: paged("PermissionsReportPage", OutputSerializer),
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR, description="Every row as one CSV file; `page_size` and `cursor` do not apply."
            ),
            **errors(400, 401, 403),
        },
    )
    def get(self, request):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        unused_days = params.validated_data["unused_days"]
        if params.validated_data["format"] == "csv":
            rows = permissions_report_stream(unused_days=unused_days)
            return csv_attachment(columns=REPORT_COLUMNS, rows=rows, name="permissions")
        paging = page_request(request)
        page = permissions_report_page(unused_days=unused_days, cursor=paging.cursor, page_size=paging.page_size)
        return paged_response(request, page, self.OutputSerializer)
