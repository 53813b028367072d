"""Who may read the audit log and the reports: admins and auditors (docs/concepts.md)."""

from __future__ import annotations

from rest_framework import permissions

from core.roles import can_read_everything


class IsAdminOrAuditor(permissions.BasePermission):
    """Admins and auditors read; members get a 403, anonymous requests a 401 (DRF's rule for no credentials)."""

    message = "Only admins and auditors may read the audit log and reports."

    def has_permission(self, request, view) -> bool:
        return can_read_everything(request.user)
