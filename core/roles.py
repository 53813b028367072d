"""User roles (docs/concepts.md): admin wins over auditor; everyone else is a member."""

from __future__ import annotations

ADMIN_GROUP = "admin"
AUDITOR_GROUP = "auditor"
ROLE_ADMIN = "admin"
ROLE_AUDITOR = "auditor"
ROLE_MEMBER = "member"


def _group_names(user) -> frozenset[str]:
    # Cached on the user object: one query per request however many checks run.
    cached = getattr(user, "_coderauth_group_names", None)
    if cached is None:
        cached = frozenset(user.groups.values_list("name", flat=True))
        user._coderauth_group_names = cached
    return cached


def is_admin(user) -> bool:
    return bool(user and user.is_authenticated and (user.is_superuser or ADMIN_GROUP in _group_names(user)))


def is_auditor(user) -> bool:
    return bool(user and user.is_authenticated and not is_admin(user) and AUDITOR_GROUP in _group_names(user))


def can_read_everything(user) -> bool:
    return is_admin(user) or is_auditor(user)


def user_role(user) -> str:
    if is_admin(user):
        return ROLE_ADMIN
    if is_auditor(user):
        return ROLE_AUDITOR
    return ROLE_MEMBER
