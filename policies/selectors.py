"""Reads of permission modes."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet

from core.exceptions import ObjectNotFound
from policies.models import PermissionMode
from policies.scopes import canonical_mode_name


def permission_mode_list() -> QuerySet[PermissionMode]:
    return PermissionMode.objects.all()


def permission_mode_find(*, name: str) -> PermissionMode | None:
    """The mode by canonical name or Coder alias, or None."""
    return PermissionMode.objects.filter(name=canonical_mode_name(name)).first()


def permission_mode_get(*, name: str) -> PermissionMode:
    """The mode by canonical name or Coder alias; raises ObjectNotFound."""
    mode = permission_mode_find(name=name)
    if mode is None:
        raise ObjectNotFound(f"No permission mode named '{name}'.")
    return mode


def site_default_mode() -> PermissionMode:
    """The mode of new workspaces. A name that matches no mode is the operator's mistake, not the client's:
    ImproperlyConfigured (a logged JSON 500) rather than a 400 blaming the request's permission_mode.
    `manage.py migrate` and `manage.py check --database default` report it first (coderauth.E003)."""
    name = settings.CODERAUTH_DEFAULT_PERMISSION_MODE
    mode = permission_mode_find(name=name)
    if mode is None:
        raise ImproperlyConfigured(f"CODERAUTH_DEFAULT_PERMISSION_MODE names no permission mode: {name!r}.")
    return mode
