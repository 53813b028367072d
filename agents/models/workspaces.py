from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

NAME_VALIDATOR = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$", "Use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit."
)


class Workspace(models.Model):
    """A development workspace owned by one user, with the permission mode its agents inherit."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=63, validators=[NAME_VALIDATOR])
    # PROTECT: deleting an account must not silently take its workspaces, agents and agent tokens with it.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="workspaces")
    permission_mode = models.ForeignKey(
        "policies.PermissionMode", on_delete=models.PROTECT, related_name="workspaces", db_column="permission_mode"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["owner_id", "name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="workspace_name_unique_per_owner")]

    def __str__(self) -> str:
        return self.name


class WorkspaceAgent(models.Model):
    """An agent running in a workspace; a null mode inherits the workspace's."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="agents")
    name = models.CharField(max_length=63, validators=[NAME_VALIDATOR])
    permission_mode = models.ForeignKey(
        "policies.PermissionMode",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="agents",
        db_column="permission_mode",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["workspace_id", "name"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="agent_name_unique_per_workspace")]

    def __str__(self) -> str:
        return self.name

    @property
    def effective_permission_mode(self):
        """Override, else the workspace's mode (needs both relations loaded to stay query-free)."""
        return self.permission_mode or self.workspace.permission_mode
