from __future__ import annotations

from django.db import models


class AppStatus(models.Model):
    """A task status an agent's app reported (what the MCP server's coder_report_task sends)."""

    STATE_CHOICES = [("working", "Working"), ("idle", "Idle"), ("complete", "Complete"), ("failure", "Failure")]

    agent = models.ForeignKey("agents.WorkspaceAgent", on_delete=models.CASCADE, related_name="app_statuses")
    app_slug = models.CharField(max_length=63)
    state = models.CharField(max_length=10, choices=STATE_CHOICES)
    message = models.CharField(max_length=160)
    uri = models.URLField(max_length=2000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["agent", "-created_at"], name="app_status_agent_latest")]

    def __str__(self) -> str:
        return f"{self.app_slug}: {self.state}"


class AgentLog(models.Model):
    """One log line an agent sent."""

    LEVEL_CHOICES = [(level, level) for level in ("trace", "debug", "info", "warn", "error")]

    agent = models.ForeignKey("agents.WorkspaceAgent", on_delete=models.CASCADE, related_name="logs")
    created_at = models.DateTimeField()
    level = models.CharField(max_length=5, choices=LEVEL_CHOICES)
    output = models.TextField()
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["agent", "created_at"], name="agent_log_agent_time")]

    def __str__(self) -> str:
        return f"[{self.level}] {self.output[:40]}"
