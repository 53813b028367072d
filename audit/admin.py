from django.contrib import admin

from audit.models import AuditEvent
from core.admin import ReadOnlyModelAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyModelAdmin):
    """Append-only: the admin can read events and nothing else."""

    list_display = ("id", "time", "action", "actor_type", "actor", "workspace_id", "agent_id", "ip")
    list_filter = ("action", "actor_type")
    search_fields = ("actor", "request_id")
