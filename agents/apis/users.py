"""User routes: login, me, user tokens, the user's own git SSH key and external-auth links."""

from __future__ import annotations

from django.contrib.auth import update_session_auth_hash
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.apis.workspaces import LIFETIME_SECONDS_LIMIT
from agents.models import ExternalAuthProvider
from agents.selectors import workspaces as selectors
from agents.services import sso, user_data, users
from core.http.openapi import errors
from core.http.pagination import page_parameters, page_request, paged, paged_response
from core.http.throttles import PASSWORD_CHANGE_THROTTLES, SIGN_IN_THROTTLES
from core.roles import user_role


class UserLoginApi(APIView):
    """Per client address and per username, signed in or not: CODERAUTH_LOGIN_*_THROTTLE_RATE, then 429.
    With CODERAUTH_PASSWORD_LOGIN off, every attempt is refused with 403 (and audited)."""

    authentication_classes = []
    permission_classes = []
    throttle_classes = list(SIGN_IN_THROTTLES)
    carries_secret = True  # the session token: Cache-Control: no-store (core/http/no_store.py)

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(max_length=4096, trim_whitespace=False)

    class OutputSerializer(serializers.Serializer):
        session_token = serializers.CharField()
        expires_at = serializers.DateTimeField()

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer, **errors(400, 401, 403, 429)})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        sso.password_login_check(username=data.validated_data["username"], method="password")
        try:
            issued = users.user_login(**data.validated_data)
        except users.LoginFailed:
            raise AuthenticationFailed("Invalid username or password.")
        body = {"session_token": issued.plaintext, "expires_at": issued.token.expires_at}
        return Response(self.OutputSerializer(body).data, status=status.HTTP_201_CREATED)

    def get_authenticate_header(self, request):
        return 'Bearer realm="user"'


class UserMeApi(APIView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        username = serializers.CharField()
        roles = serializers.ListField(child=serializers.CharField())

    @extend_schema(responses={200: OutputSerializer, **errors(401)})
    def get(self, request):
        user = request.user
        return Response(
            self.OutputSerializer({"id": user.pk, "username": user.username, "roles": [user_role(user)]}).data
        )


class UserPasswordChangeApi(APIView):
    """The signed-in user's new password. It spends the account's sign-in budget (the current password is
    checked); by default the user's other sessions and tokens are revoked, and the answer counts them."""

    throttle_classes = list(PASSWORD_CHANGE_THROTTLES)

    class InputSerializer(serializers.Serializer):
        current_password = serializers.CharField(max_length=4096, trim_whitespace=False)
        new_password = serializers.CharField(max_length=4096, trim_whitespace=False)

    class OutputSerializer(serializers.Serializer):
        revoked_sessions = serializers.IntegerField(help_text="Web sessions ended and API login sessions revoked.")
        revoked_tokens = serializers.IntegerField(help_text="Personal API tokens revoked.")

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer, **errors(400, 401, 429)})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        revoked = users.user_password_change(
            actor=request.user,
            user=request.user,
            current_password=data.validated_data["current_password"],
            new_password=data.validated_data["new_password"],
            method="api",
            keep_token_id=getattr(request.auth, "pk", None),
            keep_session_key=request.session.session_key if request.auth is None else None,
        )
        if request.auth is None:
            # Signed in with the web session: it stays valid under the new password (Django ties it to the hash).
            update_session_auth_hash(request, request.user)
        return Response(self.OutputSerializer(revoked).data)


class UserTokenOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    hint = serializers.CharField()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)


class UserTokenListCreateApi(APIView):
    carries_secret = True  # the new token

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        lifetime_seconds = serializers.IntegerField(min_value=60, max_value=LIFETIME_SECONDS_LIMIT, required=False)

    class CreatedSerializer(serializers.Serializer):
        id = serializers.UUIDField()
        name = serializers.CharField()
        token = serializers.CharField(help_text="Shown once; only a keyed digest is stored.")
        expires_at = serializers.DateTimeField()

    @extend_schema(
        operation_id="users_me_tokens_list",
        parameters=page_parameters(),
        responses={200: paged("UserTokenPage", UserTokenOutputSerializer), **errors(400, 401)},
    )
    def get(self, request):
        paging = page_request(request)
        page = selectors.user_token_page(user=request.user, cursor=paging.cursor, page_size=paging.page_size)
        return paged_response(request, page, UserTokenOutputSerializer)

    @extend_schema(request=InputSerializer, responses={201: CreatedSerializer, **errors(400, 401)})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        issued = users.user_token_issue(user=request.user, **data.validated_data)
        body = {
            "id": issued.token.id,
            "name": issued.token.name,
            "token": issued.plaintext,
            "expires_at": issued.token.expires_at,
        }
        return Response(self.CreatedSerializer(body).data, status=status.HTTP_201_CREATED)


class UserTokenRevokeApi(APIView):
    @extend_schema(responses={204: None, **errors(401, 404)})
    def delete(self, request, token_id):
        token = selectors.user_token_get(user=request.user, token_id=token_id)
        users.user_token_revoke(user=request.user, token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserGitSSHKeyApi(APIView):
    carries_secret = True  # the user's key pair (it answers with the public half)

    class OutputSerializer(serializers.Serializer):
        public_key = serializers.CharField()

    @extend_schema(responses={200: OutputSerializer, **errors(401)})
    def get(self, request):
        key = user_data.git_ssh_key_get_or_create(user=request.user)
        return Response(self.OutputSerializer(key).data)

    @extend_schema(request=None, responses={200: OutputSerializer, **errors(401)})
    def put(self, request):
        key = user_data.git_ssh_key_regenerate(user=request.user)
        return Response(self.OutputSerializer(key).data)


class UserExternalAuthLinkApi(APIView):
    class InputSerializer(serializers.Serializer):
        access_token = serializers.CharField(max_length=4096)
        token_extra = serializers.DictField(
            required=False,
            default=dict,
            help_text=(
                f"A JSON object, at most {user_data.TOKEN_EXTRA_MAX_BYTES} bytes and "
                f"{user_data.TOKEN_EXTRA_MAX_DEPTH} levels deep; no NUL or unpaired surrogates in keys or strings."
            ),
        )

        def validate_token_extra(self, value):
            problem = user_data.token_extra_problem(value)
            if problem is not None:
                raise serializers.ValidationError(problem)
            return value

    class OutputSerializer(serializers.Serializer):
        provider_id = serializers.CharField()
        linked = serializers.BooleanField()

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer, **errors(400, 401, 404)})
    def put(self, request, provider_id):
        provider = get_object_or_404(ExternalAuthProvider, pk=provider_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user_data.external_auth_link_set(user=request.user, provider=provider, **data.validated_data)
        return Response(self.OutputSerializer({"provider_id": provider.id, "linked": True}).data)


class ExternalAuthProviderListCreateApi(APIView):
    class ProviderSerializer(serializers.Serializer):
        id = serializers.RegexField(r"^[a-z0-9][a-z0-9_-]{0,62}$", max_length=63)
        type = serializers.CharField(max_length=40)
        regex = serializers.CharField(max_length=500)

    @extend_schema(
        operation_id="external_auth_providers_list",
        parameters=page_parameters(),
        responses={200: paged("ExternalAuthProviderPage", ProviderSerializer), **errors(400, 401)},
    )
    def get(self, request):
        paging = page_request(request)
        page = selectors.external_auth_provider_page(cursor=paging.cursor, page_size=paging.page_size)
        return paged_response(request, page, self.ProviderSerializer)

    @extend_schema(request=ProviderSerializer, responses={201: ProviderSerializer, **errors(400, 401, 403)})
    def post(self, request):
        data = self.ProviderSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        provider = user_data.external_auth_provider_create(
            actor=request.user,
            provider_id=data.validated_data["id"],
            type=data.validated_data["type"],
            regex=data.validated_data["regex"],
        )
        return Response(self.ProviderSerializer(provider).data, status=status.HTTP_201_CREATED)
