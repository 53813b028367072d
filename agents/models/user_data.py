from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

PROVIDER_ID_VALIDATOR = RegexValidator(r"^[a-z0-9][a-z0-9_-]{0,62}$", "Use lowercase letters, digits, '-' or '_'.")


class GitSSHKey(models.Model):
    """A user's git SSH key pair; the private key is stored encrypted (see core.crypto)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="git_ssh_key")
    public_key = models.TextField()
    private_key_encrypted = models.BinaryField(editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"SSH key of user {self.user_id}"


class ExternalAuthProvider(models.Model):
    """An OAuth provider (GitHub, GitLab...) and the regex of the git URLs it serves."""

    id = models.CharField(primary_key=True, max_length=63, validators=[PROVIDER_ID_VALIDATOR])
    type = models.CharField(max_length=40)
    regex = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.id


class ExternalAuthLink(models.Model):
    """A user's link to a provider; the access token and extras are stored encrypted."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="external_auth_links")
    provider = models.ForeignKey(ExternalAuthProvider, on_delete=models.CASCADE, related_name="links")
    access_token_encrypted = models.BinaryField(editable=False)
    token_extra_encrypted = models.BinaryField(editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "provider"], name="one_link_per_user_and_provider")]

    def __str__(self) -> str:
        return f"{self.provider_id} link of user {self.user_id}"
