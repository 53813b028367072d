"""Management routes (user auth): workspaces, agents, their modes and agent tokens."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.selectors import workspaces as selectors
from agents.services import tokens as token_services
from agents.services import workspaces as workspace_services
from core.exceptions import InvalidInput
from core.http.openapi import errors
from core.http.pagination import page_parameters, page_request, paged, paged_response
from policies.fields import PermissionModeField
from policies.scopes import ALL_SCOPES, ordered

# Far above every configurable maximum, low enough that `now + lifetime` cannot overflow a datetime;
# the services then apply the real limits (400 above the maximum, or clamping for child tokens).
LIFETIME_SECONDS_LIMIT = 100 * 365 * 86400


class AgentOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    workspace_id = serializers.UUIDField()
    permission_mode = PermissionModeField(allow_null=True)
    effective_permission_mode = PermissionModeField()


class WorkspaceOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    owner = serializers.CharField(source="owner.username")
    permission_mode = PermissionModeField()
    agents = AgentOutputSerializer(many=True, source="agents.all")


class AppStatusOutputSerializer(serializers.Serializer):
    app_slug = serializers.CharField()
    state = serializers.CharField()
    message = serializers.CharField()
    uri = serializers.CharField()
    created_at = serializers.DateTimeField()


class AgentDetailOutputSerializer(AgentOutputSerializer):
    app_statuses = AppStatusOutputSerializer(many=True)


class LooserOverrideSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="agent.id")
    name = serializers.CharField(source="agent.name")
    permission_mode = PermissionModeField(source="agent.permission_mode")
    extra_scopes = serializers.ListField(
        child=serializers.CharField(), help_text="Scopes the agent's override allows and the workspace's mode does not."
    )


class WorkspaceModeChangeOutputSerializer(WorkspaceOutputSerializer):
    agents_with_looser_overrides = LooserOverrideSerializer(
        many=True,
        help_text=(
            "Agents whose own mode allows more than the workspace's new mode: the change does not limit them. "
            "Empty when none."
        ),
    )


class ModeChangeInputSerializer(serializers.Serializer):
    permission_mode = PermissionModeField(allow_null=True)
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class WorkspaceListCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        name = serializers.RegexField(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$", max_length=63)
        owner = serializers.CharField(max_length=150, required=False)
        permission_mode = PermissionModeField(required=False)

    @extend_schema(
        operation_id="workspaces_list",
        parameters=page_parameters(),
        responses={200: paged("WorkspacePage", WorkspaceOutputSerializer), **errors(400, 401)},
    )
    def get(self, request):
        paging = page_request(request)
        page = selectors.workspace_page_for(user=request.user, cursor=paging.cursor, page_size=paging.page_size)
        return paged_response(request, page, WorkspaceOutputSerializer)

    @extend_schema(request=InputSerializer, responses={201: WorkspaceOutputSerializer, **errors(400, 401, 403)})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        workspace = workspace_services.workspace_create(
            actor=request.user,
            name=data.validated_data["name"],
            owner_username=data.validated_data.get("owner"),
            permission_mode=data.validated_data.get("permission_mode"),
        )
        workspace = selectors.workspace_get_for(user=request.user, workspace_id=workspace.pk)
        return Response(WorkspaceOutputSerializer(workspace).data, status=status.HTTP_201_CREATED)


class WorkspaceDetailApi(APIView):
    @extend_schema(responses={200: WorkspaceOutputSerializer, **errors(401, 404)})
    def get(self, request, workspace_id):
        workspace = selectors.workspace_get_for(user=request.user, workspace_id=workspace_id)
        return Response(WorkspaceOutputSerializer(workspace).data)

    @extend_schema(
        request=ModeChangeInputSerializer,
        responses={200: WorkspaceModeChangeOutputSerializer, **errors(400, 401, 403, 404)},
    )
    def patch(self, request, workspace_id):
        workspace = selectors.workspace_get_for(user=request.user, workspace_id=workspace_id)
        data = ModeChangeInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if data.validated_data["permission_mode"] is None:
            raise InvalidInput("A workspace always has a permission mode.", field="permission_mode")
        workspace_services.workspace_mode_set(actor=request.user, workspace=workspace, **data.validated_data)
        workspace = selectors.workspace_get_for(user=request.user, workspace_id=workspace_id)
        body = WorkspaceOutputSerializer(workspace).data
        body["agents_with_looser_overrides"] = LooserOverrideSerializer(
            selectors.agent_looser_override_list(workspaces=[workspace]), many=True
        ).data
        return Response(body)


class AgentCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        name = serializers.RegexField(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$", max_length=63)
        permission_mode = PermissionModeField(required=False, allow_null=True)

    @extend_schema(request=InputSerializer, responses={201: AgentOutputSerializer, **errors(400, 401, 403, 404)})
    def post(self, request, workspace_id):
        workspace = selectors.workspace_get_for(user=request.user, workspace_id=workspace_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        agent = workspace_services.agent_create(actor=request.user, workspace=workspace, **data.validated_data)
        agent = selectors.agent_get_for(user=request.user, agent_id=agent.pk)
        return Response(AgentOutputSerializer(agent).data, status=status.HTTP_201_CREATED)


class AgentDetailApi(APIView):
    @extend_schema(responses={200: AgentDetailOutputSerializer, **errors(401, 404)})
    def get(self, request, agent_id):
        agent = selectors.agent_get_for(user=request.user, agent_id=agent_id)
        return Response(self._serialize(agent))

    @extend_schema(
        request=ModeChangeInputSerializer, responses={200: AgentDetailOutputSerializer, **errors(400, 401, 403, 404)}
    )
    def patch(self, request, agent_id):
        agent = selectors.agent_get_for(user=request.user, agent_id=agent_id)
        data = ModeChangeInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        workspace_services.agent_mode_set(actor=request.user, agent=agent, **data.validated_data)
        agent = selectors.agent_get_for(user=request.user, agent_id=agent_id)
        return Response(self._serialize(agent))

    @staticmethod
    def _serialize(agent):
        body = AgentOutputSerializer(agent).data
        body["app_statuses"] = AppStatusOutputSerializer(selectors.app_status_list(agent=agent), many=True).data
        return body


class AgentTokenOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    hint = serializers.CharField()
    scopes = serializers.ListField(child=serializers.CharField())
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    parent_id = serializers.UUIDField(allow_null=True)


class IssuedAgentTokenSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    token = serializers.CharField(help_text="Shown once; only a keyed digest is stored.")
    scopes = serializers.ListField(child=serializers.CharField())
    expires_at = serializers.DateTimeField()
    agent_id = serializers.UUIDField()
    parent_id = serializers.UUIDField(allow_null=True)


def issued_agent_token_body(issued) -> dict:
    token = issued.token
    return IssuedAgentTokenSerializer(
        {
            "id": token.id,
            "token": issued.plaintext,
            "scopes": ordered(token.scopes),
            "expires_at": token.expires_at,
            "agent_id": token.agent_id,
            "parent_id": token.parent_id,
        }
    ).data


class AgentTokenListCreateApi(APIView):
    carries_secret = True  # the new token: Cache-Control: no-store (core/http/no_store.py)

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
        scopes = serializers.ListField(child=serializers.ChoiceField(choices=ALL_SCOPES), required=False, max_length=10)
        lifetime_seconds = serializers.IntegerField(min_value=60, max_value=LIFETIME_SECONDS_LIMIT, required=False)

    @extend_schema(
        operation_id="workspaceagents_tokens_list",
        parameters=page_parameters(),
        responses={200: paged("AgentTokenPage", AgentTokenOutputSerializer), **errors(400, 401, 404)},
    )
    def get(self, request, agent_id):
        agent = selectors.agent_get_for(user=request.user, agent_id=agent_id)
        paging = page_request(request)
        page = selectors.agent_token_page(agent=agent, cursor=paging.cursor, page_size=paging.page_size)
        return paged_response(request, page, AgentTokenOutputSerializer)

    @extend_schema(request=InputSerializer, responses={201: IssuedAgentTokenSerializer, **errors(400, 401, 403, 404)})
    def post(self, request, agent_id):
        agent = selectors.agent_get_for(user=request.user, agent_id=agent_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        issued = token_services.agent_token_issue(actor=request.user, agent=agent, **data.validated_data)
        return Response(issued_agent_token_body(issued), status=status.HTTP_201_CREATED)


class AgentTokenRevokeApi(APIView):
    @extend_schema(responses={204: None, **errors(401, 403, 404)})
    def delete(self, request, agent_id, token_id):
        agent = selectors.agent_get_for(user=request.user, agent_id=agent_id)
        token = selectors.agent_token_get(agent=agent, token_id=token_id)
        token_services.agent_token_revoke(actor=request.user, token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)
