from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone

from core import tokens
from policies.scopes import ALL_SCOPES


def live_token_q(now, prefix: str = "") -> models.Q:
    """Not revoked and not expired at `now`, as a filter; `prefix` reaches tokens across a relation ("tokens__")."""
    return models.Q(**{f"{prefix}revoked_at__isnull": True, f"{prefix}expires_at__gt": now})


class TokenState(models.Model):
    """Fields and checks shared by both token kinds. Only a keyed digest is stored."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, blank=True)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    hint = models.CharField(max_length=16, editable=False, help_text="Prefix and last four characters.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # Which digest key made `digest` (core/keys.py), so `rotate_keys` can count the tokens still under a
    # previous key. Empty: stored before key ids were recorded; the first use under the current key fills it.
    key_id = models.CharField(max_length=8, blank=True, editable=False, default=tokens.digest_key_id)

    class Meta:
        abstract = True

    def is_expired(self, now=None) -> bool:
        return self.expires_at <= (now or timezone.now())

    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def is_live(self, now=None) -> bool:
        return not self.is_revoked() and not self.is_expired(now)


class AgentToken(TokenState):
    """A credential of one agent with a fixed set of scopes; children never outlive their parent."""

    agent = models.ForeignKey("agents.WorkspaceAgent", on_delete=models.CASCADE, related_name="tokens")
    scopes = ArrayField(models.CharField(max_length=40), default=list)
    parent = models.ForeignKey("self", on_delete=models.CASCADE, null=True, blank=True, related_name="children")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # How many ancestors the token has (0: issued by a user), so the chain-depth cap needs no recursive query.
    depth = models.PositiveSmallIntegerField(default=0, editable=False)
    # Set when the token was rotated out (revoked, with its subtree moved to this successor). Presenting a
    # rotated-out token again means two holders: the whole lineage is revoked (refresh-token rotation).
    rotated_to = models.OneToOneField(
        "self", on_delete=models.SET_NULL, null=True, blank=True, editable=False, related_name="rotated_from"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # An agent's token list, newest first, paged by keyset.
            models.Index(fields=["agent", "-created_at", "-id"], name="agent_token_list"),
            # The live-children cap counts these under the agent's tree lock.
            models.Index(
                fields=["agent", "expires_at"],
                condition=models.Q(parent__isnull=False, revoked_at__isnull=True),
                name="agent_token_live_children",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(scopes__contained_by=list(ALL_SCOPES)), name="agent_token_scopes_known"
            ),
            models.CheckConstraint(
                condition=models.Q(expires_at__gt=models.F("created_at")), name="agent_token_expires_after_creation"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name or 'agent token'} ({self.hint})"


class UserToken(TokenState):
    """A user's session token (from login) or named API token."""

    KIND_SESSION = "session"
    KIND_API = "api"
    KIND_CHOICES = [(KIND_SESSION, "Session"), (KIND_API, "API token")]

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tokens")
    kind = models.CharField(max_length=10, choices=KIND_CHOICES)

    class Meta:
        ordering = ["-created_at"]
        # A user's API token list, newest first, paged by keyset.
        indexes = [models.Index(fields=["user", "kind", "-created_at", "-id"], name="user_token_list")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(expires_at__gt=models.F("created_at")), name="user_token_expires_after_creation"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name or self.kind} ({self.hint})"
