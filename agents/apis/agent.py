"""Agent routes (agent token only), on Coder's paths and methods. Each declares its scope."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.apis.workspaces import LIFETIME_SECONDS_LIMIT, IssuedAgentTokenSerializer, issued_agent_token_body
from agents.authentication import AgentTokenAuthentication
from agents.services import status as status_services
from agents.services import tokens as token_services
from agents.services import user_data
from core.exceptions import InvalidInput
from core.http.openapi import errors
from core.http.throttles import AgentTokenRateThrottle
from policies.permissions import HasAgentScope
from policies.scopes import (
    AGENT_CONNECT,
    AGENT_EXTERNAL_AUTH,
    AGENT_GITSSHKEY,
    AGENT_REPORT,
    ALL_SCOPES,
    ANY_VALID_AGENT_TOKEN,
    ordered,
)

# Renders datetimes as every serializer of the API does (ISO 8601 in the current time zone, `Z` for UTC).
_DATETIME = serializers.DateTimeField()


class AgentApi(APIView):
    """Base of every agent route: the agent flow alone, and the scope check. Subclasses set required_scope."""

    authentication_classes = [AgentTokenAuthentication]
    permission_classes = [HasAgentScope]
    throttle_classes = [AgentTokenRateThrottle]
    required_scope: str | None = None

    def check_permissions(self, request):
        # The token's budget before the scope check (DRF checks it after): past its budget a token gets 429
        # whatever it asks for, so a loop of refused requests costs no denial bookkeeping either.
        super().check_throttles(request)
        super().check_permissions(request)

    def check_throttles(self, request):
        """Already done, first thing in check_permissions."""


class AgentManifestApi(AgentApi):
    required_scope = AGENT_CONNECT

    class OutputSerializer(serializers.Serializer):
        agent_id = serializers.UUIDField()
        agent_name = serializers.CharField()
        workspace_id = serializers.UUIDField()
        workspace_name = serializers.CharField()
        owner_username = serializers.CharField()
        permission_mode = serializers.CharField()
        scopes = serializers.ListField(child=serializers.CharField(), help_text="What this token may do now.")

    @extend_schema(responses={200: OutputSerializer, **errors(401, 403, scope_denied=True)})
    def get(self, request):
        # The hottest route: a plain dict of strings, as OutputSerializer (which documents it) would render it,
        # without building a serializer per request (a deep copy of its fields).
        principal = request.auth
        return Response(
            {
                "agent_id": str(principal.agent_id),
                "agent_name": principal.agent_name,
                "workspace_id": str(principal.workspace_id),
                "workspace_name": principal.workspace_name,
                "owner_username": principal.owner_username,
                "permission_mode": principal.mode_name,
                "scopes": ordered(principal.allowed_scopes),
            }
        )


class AgentAppStatusApi(AgentApi):
    required_scope = AGENT_REPORT

    class InputSerializer(serializers.Serializer):
        app_slug = serializers.RegexField(r"^[a-z0-9][a-z0-9_-]{0,62}$", max_length=63)
        state = serializers.ChoiceField(choices=["working", "idle", "complete", "failure"])
        message = serializers.CharField(max_length=160, allow_blank=True)
        uri = serializers.URLField(max_length=2000, required=False, allow_blank=True, default="")

    class OutputSerializer(serializers.Serializer):
        app_slug = serializers.CharField()
        state = serializers.CharField()
        message = serializers.CharField()
        uri = serializers.CharField()
        created_at = serializers.DateTimeField()
        token_id = serializers.UUIDField(help_text="The token that reported it.")

    @extend_schema(
        request=InputSerializer,
        responses={200: OutputSerializer, **errors(400, 401, 403, 429, scope_denied=True)},
        description="Past the agent's app status quota (per minute, in statuses and in bytes): 429 with Retry-After.",
    )
    def patch(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        app_status = status_services.app_status_report(principal=request.auth, **data.validated_data)
        # A plain dict, as OutputSerializer (which documents it) would render it: no serializer per request.
        return Response(
            {
                "app_slug": app_status.app_slug,
                "state": app_status.state,
                "message": app_status.message,
                "uri": app_status.uri,
                "created_at": _DATETIME.to_representation(app_status.created_at),
                "token_id": str(app_status.token_id),
            }
        )


class AgentLogsApi(AgentApi):
    required_scope = AGENT_REPORT

    class LogLineSerializer(serializers.Serializer):
        created_at = serializers.DateTimeField()
        level = serializers.ChoiceField(choices=["trace", "debug", "info", "warn", "error"])
        # The size limit is in UTF-8 bytes (CODERAUTH_AGENT_LOG_LINE_MAX_BYTES), checked by the service.
        output = serializers.CharField(allow_blank=True, trim_whitespace=False)

    class InputSerializer(serializers.Serializer):
        logs = serializers.ListField(min_length=1, max_length=1000)

    class OutputSerializer(serializers.Serializer):
        accepted = serializers.IntegerField()

    @extend_schema(
        request=InputSerializer,
        responses={200: OutputSerializer, **errors(400, 401, 403, 413, 429, scope_denied=True)},
        description=(
            "A line's output may hold CODERAUTH_AGENT_LOG_LINE_MAX_BYTES UTF-8 bytes (400 beyond, naming the line). "
            "Past the agent's log quota (per minute, in lines and in bytes): 429 with Retry-After, nothing stored."
        ),
    )
    def patch(self, request):
        envelope = self.InputSerializer(data=request.data)
        envelope.is_valid(raise_exception=True)
        lines = self.LogLineSerializer(data=envelope.validated_data["logs"], many=True)
        if not lines.is_valid():
            raise serializers.ValidationError({"logs": lines.errors})
        accepted = status_services.agent_logs_append(principal=request.auth, logs=lines.validated_data)
        return Response(self.OutputSerializer({"accepted": accepted}).data)


class AgentChildTokenApi(AgentApi):
    """Any valid agent token may mint a child; the service keeps its scopes within the caller's and caps how many
    live children an agent holds and how deep a chain goes (409 beyond)."""

    required_scope = ANY_VALID_AGENT_TOKEN
    carries_secret = True  # the new token: Cache-Control: no-store (core/http/no_store.py)

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
        scopes = serializers.ListField(child=serializers.ChoiceField(choices=ALL_SCOPES), required=False, max_length=10)
        lifetime_seconds = serializers.IntegerField(min_value=60, max_value=LIFETIME_SECONDS_LIMIT, required=False)

    @extend_schema(request=InputSerializer, responses={201: IssuedAgentTokenSerializer, **errors(400, 401, 409)})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        issued = token_services.agent_child_token_issue(principal=request.auth, **data.validated_data)
        return Response(issued_agent_token_body(issued), status=status.HTTP_201_CREATED)


class AgentChildTokenRevokeApi(AgentApi):
    """An agent revokes its own token or a descendant (with its subtree); any other token is a 404."""

    required_scope = ANY_VALID_AGENT_TOKEN

    @extend_schema(responses={204: None, **errors(401, 404)})
    def delete(self, request, token_id):
        token_services.agent_token_revoke_by_agent(principal=request.auth, token_id=token_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AgentGitSSHKeyApi(AgentApi):
    required_scope = AGENT_GITSSHKEY
    carries_secret = True  # the private key

    class OutputSerializer(serializers.Serializer):
        public_key = serializers.CharField()
        private_key = serializers.CharField()

    @extend_schema(responses={200: OutputSerializer, **errors(401, 403, scope_denied=True)})
    def get(self, request):
        public_key, private_key = user_data.agent_git_ssh_key_read(principal=request.auth)
        return Response(self.OutputSerializer({"public_key": public_key, "private_key": private_key}).data)


class ExternalAuthSecretSerializer(serializers.Serializer):
    access_token = serializers.CharField()
    token_extra = serializers.DictField()
    type = serializers.CharField()


class AgentExternalAuthApi(AgentApi):
    required_scope = AGENT_EXTERNAL_AUTH
    carries_secret = True  # the OAuth access token

    @extend_schema(
        parameters=[
            OpenApiParameter("id", str, description="Provider id."),
            OpenApiParameter("match", str, description="A git or repository URL matched against provider regexes."),
        ],
        responses={200: ExternalAuthSecretSerializer, **errors(400, 401, 403, 404, scope_denied=True)},
    )
    def get(self, request):
        provider_id = request.query_params.get("id")
        match = request.query_params.get("match")
        if bool(provider_id) == bool(match):
            raise InvalidInput("Give exactly one of the query parameters 'id' or 'match'.")
        secret = user_data.agent_external_auth_read(
            principal=request.auth, route="external-auth", provider_id=provider_id, url=match, url_field="match"
        )
        return Response(
            ExternalAuthSecretSerializer(
                {"access_token": secret.access_token, "token_extra": secret.token_extra, "type": secret.type}
            ).data
        )


class AgentGitAuthApi(AgentApi):
    required_scope = AGENT_EXTERNAL_AUTH
    carries_secret = True  # the OAuth access token

    @extend_schema(
        parameters=[OpenApiParameter("url", str, required=True, description="The git URL to authenticate.")],
        responses={200: ExternalAuthSecretSerializer, **errors(400, 401, 403, 404, scope_denied=True)},
    )
    def get(self, request):
        url = request.query_params.get("url")
        if not url:
            raise InvalidInput("The query parameter 'url' is required.", field="url")
        secret = user_data.agent_external_auth_read(principal=request.auth, route="gitauth", url=url)
        return Response(
            ExternalAuthSecretSerializer(
                {"access_token": secret.access_token, "token_extra": secret.token_extra, "type": secret.type}
            ).data
        )
