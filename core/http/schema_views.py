"""The OpenAPI schema and its docs pages, whose errors answer JSON like the rest of /api/.

drf-spectacular's views render with their own renderers (YAML, HTML templates), so a 405 or an unknown
`?format=` would otherwise come back as YAML or an HTML page."""

from __future__ import annotations

from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.renderers import JSONRenderer


class JsonErrorsMixin:
    http_method_names = ["get", "head", "options"]

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        renderer = JSONRenderer()
        self.request.accepted_renderer = renderer
        self.request.accepted_media_type = renderer.media_type
        return response


class SchemaView(JsonErrorsMixin, SpectacularAPIView):
    pass


class SchemaSwaggerView(JsonErrorsMixin, SpectacularSwaggerView):
    pass


class SchemaRedocView(JsonErrorsMixin, SpectacularRedocView):
    pass
