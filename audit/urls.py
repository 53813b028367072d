"""Audit log routes (admins and auditors)."""

from django.urls import path

from audit import apis

urlpatterns = [
    path("audit", apis.AuditEventListApi.as_view(), name="audit-list"),
    path("audit/export", apis.AuditExportApi.as_view(), name="audit-export"),
    path("audit/export/manifest", apis.AuditExportManifestApi.as_view(), name="audit-export-manifest"),
    path("audit/<int:event_id>", apis.AuditEventDetailApi.as_view(), name="audit-detail"),
]
