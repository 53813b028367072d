"""System check: a default permission mode that names no mode stops `migrate` and `check --database default`."""

from __future__ import annotations

from django.conf import settings
from django.core import checks
from django.db import DatabaseError

from policies.selectors import permission_mode_find


@checks.register(checks.Tags.database)
def check_default_permission_mode_exists(app_configs=None, databases=None, **kwargs) -> list[checks.CheckMessage]:
    if not databases:
        return []
    name = settings.CODERAUTH_DEFAULT_PERMISSION_MODE
    try:
        exists = permission_mode_find(name=name) is not None
    except DatabaseError:  # not migrated yet: the built-ins arrive with the migrations
        return []
    if exists:
        return []
    return [
        checks.Error(
            f"CODERAUTH_DEFAULT_PERMISSION_MODE is {name!r}, which names no permission mode.",
            hint="Use default or no-user-data (or the name of a custom mode you created).",
            id="coderauth.E003",
        )
    ]
