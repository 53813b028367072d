from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models

from policies.scopes import ALL_SCOPES


class AccessRequest(models.Model):
    """An agent's request for some agent scopes for a while (just-in-time elevation), and what a person decided.

    `state` stores the decision only; `expired` is never stored but read from the clock (agents/services/
    elevation.py): a pending request past CODERAUTH_ELEVATION_PENDING_SECONDS, or an approved one past
    `expires_at`. `expired_recorded_at` marks that its `access_request.expired` audit row was written (once).
    """

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    REVOKED = "revoked"
    EXPIRED = "expired"  # read, never stored
    STATE_CHOICES = [(PENDING, "Pending"), (APPROVED, "Approved"), (DENIED, "Denied"), (REVOKED, "Revoked")]

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey("agents.WorkspaceAgent", on_delete=models.CASCADE, related_name="access_requests")
    # The agent's workspace, kept on the row so lists and the audit filter by workspace without a join.
    workspace = models.ForeignKey("agents.Workspace", on_delete=models.CASCADE, related_name="access_requests")
    token = models.ForeignKey(
        "agents.AgentToken", on_delete=models.SET_NULL, null=True, blank=True, editable=False, related_name="+"
    )
    scopes = ArrayField(models.CharField(max_length=40))
    reason = models.CharField(max_length=500)
    duration_seconds = models.PositiveIntegerField()
    state = models.CharField(max_length=10, choices=STATE_CHOICES, default=PENDING)
    requested_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decision_reason = models.CharField(max_length=500, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    revoke_reason = models.CharField(max_length=500, blank=True)
    expired_recorded_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [
            # The agent hot path's one statement finds the live grant through this.
            models.Index(
                fields=["agent", "expires_at"], condition=models.Q(state="approved"), name="access_request_grant"
            ),
            models.Index(fields=["agent", "-requested_at", "-id"], name="access_request_agent_list"),
            models.Index(fields=["-requested_at", "-id"], name="access_request_list"),
            models.Index(fields=["state", "-requested_at"], name="access_request_state"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(scopes__contained_by=list(ALL_SCOPES)), name="access_request_agent_scopes"
            ),
            models.CheckConstraint(
                condition=~models.Q(state="approved") | models.Q(expires_at__isnull=False),
                name="access_request_approved_has_expiry",
            ),
        ]

    def __str__(self) -> str:
        return f"access request {self.id} ({self.state})"
