from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.core.validators import RegexValidator
from django.db import models

from policies.scopes import ALL_SCOPES, ordered

MODE_NAME_VALIDATOR = RegexValidator(
    r"^[a-z0-9][a-z0-9-]{0,62}$", "Use 1-63 lowercase letters, digits and hyphens, starting with a letter or digit."
)


class PermissionMode(models.Model):
    """A named set of agent scopes. Built-ins are created by migration and never change."""

    name = models.CharField(primary_key=True, max_length=63, validators=[MODE_NAME_VALIDATOR])
    description = models.CharField(max_length=300, blank=True)
    scopes = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    builtin = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-builtin", "name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(scopes__contained_by=list(ALL_SCOPES)),
                name="permission_mode_scopes_known",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def allows(self, scope: str) -> bool:
        return scope in self.scopes

    def scope_set(self) -> frozenset[str]:
        return frozenset(self.scopes)

    def ordered_scopes(self) -> list[str]:
        return ordered(self.scopes)
