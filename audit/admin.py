from django.contrib import admin

from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Append-only: the admin can read events and nothing else."""

    list_display = ("id", "time", "action", "actor_type", "actor", "workspace_id", "agent_id", "ip")
    list_filter = ("action", "actor_type")
    search_fields = ("actor", "request_id")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
