"""Reads of permission modes."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet

from core.exceptions import ObjectNotFound
from core.pagination import Page, keyset_page
from policies.models import PermissionMode
from policies.scopes import canonical_mode_name

# The model's order: built-in modes first, then by name (the primary key).
PERMISSION_MODE_ORDERING = ("-builtin", "name")


def permission_mode_list() -> QuerySet[PermissionMode]:
    return PermissionMode.objects.order_by(*PERMISSION_MODE_ORDERING)


def permission_mode_page(*, cursor: str | None, page_size: int | None = None) -> Page[PermissionMode]:
    return keyset_page(
        PermissionMode.objects.all(), ordering=PERMISSION_MODE_ORDERING, cursor=cursor, page_size=page_size
    )


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
