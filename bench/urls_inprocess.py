"""The in-process benchmark's routes: the product's, the DRF TokenAuthentication baseline, a view without
authentication, and the manifest's shape behind django-rest-knox and djangorestframework-api-key.

All live under /api/, first, so they pass through the same middleware work as the agent routes (the product's
catch-all for unknown /api/ paths comes after them).
"""

from django.urls import path
from knox.auth import TokenAuthentication as KnoxTokenAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_api_key.permissions import HasAPIKey

from bench.urls_bench import DrfTokenManifestApi
from bench.urls_bench import urlpatterns as bench_urlpatterns
from coderauth.urls import handler404, handler500  # noqa: F401

MANIFEST_SHAPE = {
    "user_id": 1,
    "username": "bench-owner",
    "email": "bench-owner@example.com",
    "first_name": "",
    "last_name": "",
    "is_active": True,
    "scopes": ["agent:connect", "agent:report"],
}


class NoAuthApi(APIView):
    """The floor: DRF with no authentication, no permission and no database, answering a fixed JSON body."""

    authentication_classes = []
    permission_classes = [AllowAny]

    def get(self, request):
        return Response(MANIFEST_SHAPE)


class KnoxManifestApi(DrfTokenManifestApi):
    """The DRF baseline's view behind django-rest-knox (`Authorization: Token <token>`, SHA-512 digest)."""

    authentication_classes = [KnoxTokenAuthentication]


class ApiKeyManifestApi(DrfTokenManifestApi):
    """The DRF baseline's body behind djangorestframework-api-key (`Authorization: Api-Key <key>`): a permission,
    not an authentication, so the body is the fixed shape."""

    authentication_classes = []
    permission_classes = [HasAPIKey]

    def get(self, request):
        return Response(self.OutputSerializer(MANIFEST_SHAPE).data)


urlpatterns = [
    path("api/bench/no-auth", NoAuthApi.as_view(), name="bench-no-auth"),
    path("api/bench/drf-token/manifest", DrfTokenManifestApi.as_view(), name="bench-api-drf-token-manifest"),
    path("api/bench/knox/manifest", KnoxManifestApi.as_view(), name="bench-knox-manifest"),
    path("api/bench/api-key/manifest", ApiKeyManifestApi.as_view(), name="bench-api-key-manifest"),
    *bench_urlpatterns,
]
