from django.contrib import admin

from policies.models import PermissionMode


@admin.register(PermissionMode)
class PermissionModeAdmin(admin.ModelAdmin):
    """Read-only: modes change through the API or UI so that every change is audited."""

    list_display = ("name", "scopes", "builtin", "description")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
