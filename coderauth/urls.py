from django.contrib import admin
from django.urls import include, path, re_path

from core.http.errors import api_not_found
from core.http.health import HealthzApi, ReadyzApi
from core.http.metrics import metrics_view
from core.http.schema_views import SchemaRedocView, SchemaSwaggerView, SchemaView
from ui.views.auth import AdminLoginView, AdminPasswordChangeView

api_v2 = [
    path("", include(("agents.urls", "agents"))),
    path("", include(("policies.urls", "policies"))),
    path("", include(("audit.urls", "audit"))),
]

urlpatterns = [
    # Load balancer and orchestrator probes: liveness without the database, readiness with it.
    path("healthz", HealthzApi.as_view(), name="healthz"),
    path("readyz", ReadyzApi.as_view(), name="readyz"),
    # Prometheus; 404 unless CODERAUTH_METRICS_TOKEN is set.
    path("metrics", metrics_view, name="metrics"),
    path("api/v2/", include(api_v2)),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    path("api/schema/docs/", SchemaSwaggerView.as_view(url_name="schema"), name="schema-docs"),
    path("api/schema/redoc/", SchemaRedocView.as_view(url_name="schema"), name="schema-redoc"),
    # Anything else under /api/ answers JSON, even with DEBUG on.
    re_path(r"^api/", api_not_found),
    # Before admin.site.urls: Django's own admin sign-in is neither throttled nor audited.
    path("admin/login/", AdminLoginView.as_view(), name="admin-login"),
    # Likewise Django's admin password change: this one is throttled, audited and revokes the other credentials.
    path(
        "admin/password_change/",
        admin.site.admin_view(AdminPasswordChangeView.as_view()),
        name="admin-password-change",
    ),
    path("admin/", admin.site.urls),
    path("", include(("ui.urls", "ui"))),
]

handler400 = "core.http.errors.handler400"
handler404 = "core.http.errors.handler404"
handler500 = "core.http.errors.handler500"
