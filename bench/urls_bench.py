"""The product's routes plus one baseline: the manifest's shape behind DRF's plaintext TokenAuthentication.

The baseline view goes through the same middleware, the same JSON renderer and the same exception
handler as the agent routes; only authentication and permission differ.
"""

from django.urls import path
from rest_framework import serializers
from rest_framework.authentication import TokenAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from coderauth.urls import handler404, handler500  # noqa: F401
from coderauth.urls import urlpatterns as product_urlpatterns


class DrfTokenManifestApi(APIView):
    """What `GET workspaceagents/me/manifest` answers, for a user authenticated by DRF's `Token <key>`."""

    authentication_classes = [TokenAuthentication]
    permission_classes = [IsAuthenticated]

    class OutputSerializer(serializers.Serializer):
        user_id = serializers.IntegerField()
        username = serializers.CharField()
        email = serializers.CharField()
        first_name = serializers.CharField()
        last_name = serializers.CharField()
        is_active = serializers.BooleanField()
        scopes = serializers.ListField(child=serializers.CharField())

    def get(self, request):
        user = request.user
        body = {
            "user_id": user.pk,
            "username": user.username,
            "email": user.email,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "is_active": user.is_active,
            "scopes": ["agent:connect", "agent:report"],
        }
        return Response(self.OutputSerializer(body).data)


# First, so that the product's catch-all for unknown /api/ paths does not shadow it (it lives outside /api/).
urlpatterns = [
    path("bench/drf-token/manifest", DrfTokenManifestApi.as_view(), name="bench-drf-token-manifest"),
    *product_urlpatterns,
]
