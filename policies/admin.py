from django.contrib import admin

from core.admin import ReadOnlyModelAdmin
from policies.models import PermissionMode


@admin.register(PermissionMode)
class PermissionModeAdmin(ReadOnlyModelAdmin):
    """Read-only: modes change through the API or UI so that every change is audited."""

    list_display = ("name", "scopes", "builtin", "description")
