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
    # Which token reported it, so a status sent with a stolen token can be traced; null once the token is purged.
    token = models.ForeignKey(
        "agents.AgentToken", on_delete=models.SET_NULL, null=True, blank=True, editable=False, related_name="+"
    )

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
        indexes = [
            models.Index(fields=["agent", "created_at"], name="agent_log_agent_time"),
            # Retention deletes by arrival time (`created_at` is the agent's clock).
            models.Index(fields=["received_at"], name="agent_log_received"),
        ]

    def __str__(self) -> str:
        return f"[{self.level}] {self.output[:40]}"


class AgentReportWindow(models.Model):
    """What one agent reported in its current quota window, per kind (logs, app statuses): one row each,
    counted up by a single upsert per report and reset when the window turns (agents/services/quotas.py)."""

    KIND_LOGS = "logs"
    KIND_APP_STATUS = "app_status"
    KIND_CHOICES = [(KIND_LOGS, "Logs"), (KIND_APP_STATUS, "App statuses")]

    agent = models.ForeignKey("agents.WorkspaceAgent", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=20, choices=KIND_CHOICES)
    window_start = models.DateTimeField()
    rows = models.BigIntegerField(default=0)
    bytes = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["agent", "kind"], name="one_report_window_per_agent_kind")]

    def __str__(self) -> str:
        return f"{self.kind} of agent {self.agent_id} since {self.window_start}"
