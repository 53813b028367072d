"""Permission modes: everyone authenticated lists them; admins manage custom ones."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.http.openapi import errors
from core.http.pagination import page_parameters, page_request, paged, paged_response
from policies import selectors, services
from policies.models import MODE_NAME_VALIDATOR
from policies.scopes import ALL_SCOPES


class PermissionModeOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    scopes = serializers.ListField(child=serializers.CharField(), source="ordered_scopes")
    builtin = serializers.BooleanField()


class PermissionModeListCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=63, validators=[MODE_NAME_VALIDATOR])
        description = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
        scopes = serializers.ListField(child=serializers.ChoiceField(choices=ALL_SCOPES), max_length=10)

    @extend_schema(
        operation_id="permission_modes_list",
        parameters=page_parameters(),
        responses={200: paged("PermissionModePage", PermissionModeOutputSerializer), **errors(400, 401)},
    )
    def get(self, request):
        paging = page_request(request)
        page = selectors.permission_mode_page(cursor=paging.cursor, page_size=paging.page_size)
        return paged_response(request, page, PermissionModeOutputSerializer)

    @extend_schema(request=InputSerializer, responses={201: PermissionModeOutputSerializer, **errors(400, 401, 403)})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        mode = services.permission_mode_create(actor=request.user, **data.validated_data)
        return Response(PermissionModeOutputSerializer(mode).data, status=status.HTTP_201_CREATED)


class PermissionModeDetailApi(APIView):
    class InputSerializer(serializers.Serializer):
        description = serializers.CharField(max_length=300, required=False, allow_blank=True)
        scopes = serializers.ListField(child=serializers.ChoiceField(choices=ALL_SCOPES), max_length=10, required=False)

    @extend_schema(responses={200: PermissionModeOutputSerializer, **errors(401, 404)})
    def get(self, request, name):
        return Response(PermissionModeOutputSerializer(selectors.permission_mode_get(name=name)).data)

    @extend_schema(
        request=InputSerializer, responses={200: PermissionModeOutputSerializer, **errors(400, 401, 403, 404)}
    )
    def patch(self, request, name):
        mode = selectors.permission_mode_get(name=name)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        mode = services.permission_mode_update(actor=request.user, mode=mode, **data.validated_data)
        return Response(PermissionModeOutputSerializer(mode).data)

    @extend_schema(responses={204: None, **errors(400, 401, 403, 404)})
    def delete(self, request, name):
        services.permission_mode_delete(actor=request.user, mode=selectors.permission_mode_get(name=name))
        return Response(status=status.HTTP_204_NO_CONTENT)
