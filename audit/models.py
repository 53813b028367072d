from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q

from audit import actions
from audit.chain import FIELDS

# The agent user-data reads and their two kinds, as the permissions report asks for them. Each has its own partial
# index on (agent_id, time), so "an agent's latest read" is one backward index probe, not a scan of its rows.
USER_DATA_READS = Q(action=actions.AGENT_USER_DATA_ACCESSED)
GIT_SSH_KEY_READS = USER_DATA_READS & Q(details__route="gitsshkey")
EXTERNAL_AUTH_READS = USER_DATA_READS & Q(details__route__in=["external-auth", "gitauth"])


class AuditEvent(models.Model):
    """One append-only audit record. Never holds a token or secret, at most a display hint.

    PostgreSQL triggers reject DELETE, TRUNCATE and every UPDATE but the seal (migrations 0002 and 0003). Rows are
    written only by audit.services.audit_record, unsealed (`prev_hash` and `hash` empty); audit/sealing.py then
    links them in id order, so `hash` chains each row to its predecessor (audit/chain.py).
    """

    ACTOR_USER = "user"
    ACTOR_AGENT = "agent"
    ACTOR_SYSTEM = "system"
    ACTOR_TYPE_CHOICES = [(ACTOR_USER, "User"), (ACTOR_AGENT, "Agent"), (ACTOR_SYSTEM, "System")]

    id = models.BigAutoField(primary_key=True)
    time = models.DateTimeField(db_index=True)
    action = models.CharField(max_length=64, db_index=True)
    actor_type = models.CharField(max_length=10, choices=ACTOR_TYPE_CHOICES)
    actor = models.CharField(max_length=150, blank=True, db_index=True)
    # Plain ids, not foreign keys: the record must outlive the workspace or agent it names.
    workspace_id = models.UUIDField(null=True, blank=True, db_index=True)
    agent_id = models.UUIDField(null=True, blank=True, db_index=True)
    details = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    prev_hash = models.CharField(max_length=64, blank=True)
    hash = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["agent_id", "time"], condition=USER_DATA_READS, name="audit_user_data_reads"),
            models.Index(fields=["agent_id", "time"], condition=GIT_SSH_KEY_READS, name="audit_git_ssh_key_reads"),
            models.Index(fields=["agent_id", "time"], condition=EXTERNAL_AUTH_READS, name="audit_external_auth_reads"),
        ]

    def __str__(self) -> str:
        return f"#{self.id} {self.action} by {self.actor_type}:{self.actor}"

    def chain_fields(self) -> dict[str, Any]:
        """The row as the chain hashes it (audit/chain.py)."""
        return {name: getattr(self, name) for name in FIELDS}


class AuditStreamCursor(models.Model):
    """How far one SIEM sink has received the audit log (audit/streaming/delivery.py). Operational state, not an
    audited change: auditing the stream's own progress would give the stream something new to send forever.

    One row per configured sink name. Its row lock, held while a batch is in flight, keeps two workers from sending
    the same events; `last_id` and `last_hash` move, in that transaction, only once the receiver acknowledged.
    """

    sink = models.CharField(max_length=64, unique=True)
    # The last event the receiver acknowledged (0: none yet), and its hash: the next event must chain to it.
    last_id = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, blank=True)
    delivered = models.BigIntegerField(default=0)
    # Failed attempts since the last success, and when the next may start (exponential backoff, shared by workers).
    failures = models.IntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_delivered_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.sink} at #{self.last_id}"
