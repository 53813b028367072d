from django.contrib import admin

from audit.models import AuditEvent, AuditStreamCursor
from core.admin import ReadOnlyModelAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyModelAdmin):
    """Append-only: the admin can read events and nothing else."""

    list_display = ("id", "time", "action", "actor_type", "actor", "workspace_id", "agent_id", "ip")
    list_filter = ("action", "actor_type")
    search_fields = ("actor", "request_id")


@admin.register(AuditStreamCursor)
class AuditStreamCursorAdmin(ReadOnlyModelAdmin):
    """How far each SIEM sink has received the log; moved only by stream_audit (see /audit/streaming/)."""

    list_display = ("sink", "last_id", "delivered", "last_delivered_at", "failures", "next_attempt_at", "last_error")
