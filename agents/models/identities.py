"""Ways into the web UI other than a password: accounts at the OpenID Provider, and one-time break-glass codes."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class ExternalIdentity(models.Model):
    """A user's account at an OpenID Provider. Single sign-on finds the user by this (issuer, subject) pair alone:
    never by email or username, which the provider's users may be able to choose."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="external_identities")
    issuer = models.CharField(max_length=500)
    # The ID token's `sub`: at most 255 ASCII characters (OpenID Connect Core, 2).
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_sign_in_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "external identities"
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="external_identity_issuer_subject")]

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"


class BreakGlassCode(models.Model):
    """A one-time, short-lived code that signs an admin in to the web UI without a password or the OpenID Provider,
    made from the server's shell by `manage.py break_glass_signin`. Only a keyed digest is stored."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    hint = models.CharField(max_length=16, editable=False, help_text="Prefix and last four characters.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(expires_at__gt=models.F("created_at")), name="break_glass_expires_after_creation"
            ),
        ]

    def __str__(self) -> str:
        return f"break-glass code {self.hint}"
