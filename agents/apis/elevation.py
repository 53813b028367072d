"""Just-in-time elevation over REST: an agent asks for scopes (agent routes), a person decides (user routes)."""

from __future__ import annotations

import uuid

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.apis.agent import AgentApi
from agents.selectors import elevation as selectors
from agents.services import elevation as services
from core.exceptions import InvalidInput
from core.http.openapi import errors
from core.http.pagination import page_parameters, page_request, paged, paged_response
from core.http.throttles import ElevationRequestThrottle
from policies.scopes import AGENT_CONNECT, ALL_SCOPES

# Far above any configurable maximum; the service applies the real bounds (a 400 naming the field).
_DURATION_LIMIT = 10 * 365 * 86400


class AccessRequestOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    state = serializers.SerializerMethodField(help_text="pending, approved, denied, revoked or expired (read now).")
    scopes = serializers.ListField(child=serializers.CharField())
    reason = serializers.CharField()
    duration_seconds = serializers.IntegerField()
    requested_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True, help_text="Null until approved.")
    agent_id = serializers.UUIDField()
    workspace_id = serializers.UUIDField()
    decided_at = serializers.DateTimeField(allow_null=True)
    decided_by = serializers.CharField(source="decided_by.username", allow_null=True, default=None)
    decision_reason = serializers.CharField()
    revoked_at = serializers.DateTimeField(allow_null=True)

    def get_state(self, access_request) -> str:
        return services.access_request_state(access_request)


def _body(access_request) -> dict:
    return AccessRequestOutputSerializer(access_request).data


class AgentAccessRequestListCreateApi(AgentApi):
    """The agent's own access requests; POST asks for scopes its mode does not allow now."""

    required_scope = AGENT_CONNECT

    class InputSerializer(serializers.Serializer):
        scopes = serializers.ListField(
            child=serializers.ChoiceField(choices=ALL_SCOPES), min_length=1, max_length=len(ALL_SCOPES)
        )
        reason = serializers.CharField(max_length=500)
        duration_seconds = serializers.IntegerField(min_value=1, max_value=_DURATION_LIMIT)

    def get_throttles(self):
        # Asking is budgeted per agent in the shared cache; reading its own requests is not.
        throttles = super().get_throttles()
        if self.request.method == "POST":
            throttles.append(ElevationRequestThrottle())
        return throttles

    @extend_schema(
        operation_id="agent_access_requests_list",
        parameters=page_parameters(),
        responses={200: paged("AccessRequestPage", AccessRequestOutputSerializer), **errors(400, 401, 403)},
    )
    def get(self, request):
        paging = page_request(request)
        page = selectors.access_request_page_for_agent(
            agent_id=request.auth.agent_id, cursor=paging.cursor, page_size=paging.page_size
        )
        return paged_response(request, page, AccessRequestOutputSerializer)

    @extend_schema(
        request=InputSerializer,
        responses={201: AccessRequestOutputSerializer, **errors(400, 401, 403, 409, 429, scope_denied=True)},
        description=(
            "Scopes the agent's mode does not allow now, carried by the token's user-issued root token; "
            "duration 60 to CODERAUTH_ELEVATION_MAX_SECONDS. One open request per agent (409 naming it in `id`). "
            "CODERAUTH_ELEVATION_REQUEST_RATE requests per agent, refused ones included (429 with Retry-After)."
        ),
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        access_request = services.access_request_create(principal=request.auth, **data.validated_data)
        return Response(_body(access_request), status=status.HTTP_201_CREATED)


class AgentAccessRequestDetailApi(AgentApi):
    required_scope = AGENT_CONNECT

    @extend_schema(responses={200: AccessRequestOutputSerializer, **errors(401, 403, 404, scope_denied=True)})
    def get(self, request, request_id):
        access_request = selectors.access_request_get_for_agent(agent_id=request.auth.agent_id, request_id=request_id)
        return Response(_body(access_request))


def _uuid_param(request, name: str):
    raw = request.query_params.get(name) or None
    if raw is None:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise InvalidInput("Must be a UUID.", field=name) from None


class AccessRequestListApi(APIView):
    """Admins and auditors see every request, members those of their own workspaces."""

    @extend_schema(
        operation_id="access_requests_list",
        parameters=[
            OpenApiParameter("state", str, enum=list(selectors.STATES), description="The state as read now."),
            OpenApiParameter("workspace", str, description="A workspace id."),
            OpenApiParameter("agent", str, description="An agent id."),
            *page_parameters(),
        ],
        responses={200: paged("AccessRequestListPage", AccessRequestOutputSerializer), **errors(400, 401)},
    )
    def get(self, request):
        paging = page_request(request)
        page = selectors.access_request_page_for(
            user=request.user,
            cursor=paging.cursor,
            page_size=paging.page_size,
            state=request.query_params.get("state") or None,
            workspace_id=_uuid_param(request, "workspace"),
            agent_id=_uuid_param(request, "agent"),
        )
        return paged_response(request, page, AccessRequestOutputSerializer)


class AccessRequestDetailApi(APIView):
    @extend_schema(responses={200: AccessRequestOutputSerializer, **errors(401, 404)})
    def get(self, request, request_id):
        return Response(_body(selectors.access_request_get_for(user=request.user, request_id=request_id)))


class DecisionInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500)


_DECISION_ERRORS = errors(400, 401, 403, 404, 409)


class AccessRequestApproveApi(APIView):
    class InputSerializer(DecisionInputSerializer):
        duration_seconds = serializers.IntegerField(
            min_value=1, max_value=_DURATION_LIMIT, required=False, help_text="Shorter than asked, never longer."
        )

    @extend_schema(
        request=InputSerializer,
        responses={200: AccessRequestOutputSerializer, **_DECISION_ERRORS},
        description="Grants a pending request from now. 409 when it is no longer pending (decided or expired).",
    )
    def post(self, request, request_id):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        access_request = services.access_request_approve(
            actor=request.user, request_id=request_id, **data.validated_data
        )
        return Response(_body(selectors.access_request_get_for(user=request.user, request_id=access_request.pk)))


class AccessRequestDenyApi(APIView):
    class InputSerializer(DecisionInputSerializer):
        pass

    @extend_schema(
        request=InputSerializer,
        responses={200: AccessRequestOutputSerializer, **_DECISION_ERRORS},
        description="409 when the request is no longer pending.",
    )
    def post(self, request, request_id):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        access_request = services.access_request_deny(actor=request.user, request_id=request_id, **data.validated_data)
        return Response(_body(selectors.access_request_get_for(user=request.user, request_id=access_request.pk)))


class AccessRequestRevokeApi(APIView):
    class InputSerializer(DecisionInputSerializer):
        pass

    @extend_schema(
        request=InputSerializer,
        responses={200: AccessRequestOutputSerializer, **_DECISION_ERRORS},
        description="Ends a live grant now. 409 unless the request is approved and not expired.",
    )
    def post(self, request, request_id):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        access_request = services.access_request_revoke(
            actor=request.user, request_id=request_id, **data.validated_data
        )
        return Response(_body(selectors.access_request_get_for(user=request.user, request_id=access_request.pk)))
