"""The OpenAPI schema and its docs pages, whose errors answer JSON like the rest of /api/.

drf-spectacular's views render with their own renderers (YAML, HTML templates), so a 405 or an unknown
`?format=` would otherwise come back as YAML or an HTML page.

The docs pages render from templates/api_docs/, without the stock templates' inline script and style (Swagger UI's
start-up script is a separate request, `?script`), under the site's Content-Security-Policy plus the few
allowances each viewer needs, granted here and nowhere else."""

from __future__ import annotations

from csp.decorators import csp_update
from django.utils.decorators import method_decorator
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView
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


# Swagger UI's stylesheet draws its icons from data: URIs.
SWAGGER_UI_POLICY = {"img-src": ["data:"]}
# Redoc styles itself with generated <style> elements (styled-components), searches in a Web Worker started from a
# blob: URL, and draws icons from data: URIs.
REDOC_POLICY = {"style-src": ["'unsafe-inline'"], "worker-src": ["blob:"], "img-src": ["data:"]}


@method_decorator(csp_update(SWAGGER_UI_POLICY), name="dispatch")
class SchemaSwaggerView(JsonErrorsMixin, SpectacularSwaggerSplitView):
    template_name = "api_docs/swagger_ui.html"


@method_decorator(csp_update(REDOC_POLICY), name="dispatch")
class SchemaRedocView(JsonErrorsMixin, SpectacularRedocView):
    template_name = "api_docs/redoc.html"
