"""Login, user tokens, and account changes made in the Django admin."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.db import transaction
from django.utils import timezone

from agents.models import ExternalAuthLink, GitSSHKey, UserToken, live_token_q
from audit import actions
from audit.services import audit_record
from core import tokens


@dataclass(frozen=True)
class IssuedUserToken:
    token: UserToken
    plaintext: str  # shown once in the response, never stored


class LoginFailed(Exception):
    pass


def _issue(*, user, kind: str, name: str, lifetime: timedelta) -> IssuedUserToken:
    secret = tokens.generate("user")
    now = timezone.now()
    token = UserToken.objects.create(
        user=user,
        kind=kind,
        name=name,
        digest=secret.digest,
        hint=secret.hint,
        created_at=now,
        expires_at=now + lifetime,
    )
    return IssuedUserToken(token=token, plaintext=secret.plaintext)


def user_login(*, username: str, password: str) -> IssuedUserToken:
    """Password login that yields a session token. Failures are audited but say nothing specific."""
    user = authenticate(username=username, password=password)
    if user is None or not user.is_active:
        with transaction.atomic():
            audit_record(
                action=actions.USER_LOGIN_FAILED,
                actor_type="user",
                actor=username[:150],
                details={"reason": "bad_credentials"},
            )
        raise LoginFailed
    with transaction.atomic():
        issued = _issue(
            user=user, kind=UserToken.KIND_SESSION, name="session", lifetime=settings.CODERAUTH_SESSION_TOKEN_LIFETIME
        )
        audit_record(
            action=actions.USER_LOGIN,
            actor_type="user",
            actor=user.username,
            details={"method": "password", "token_id": str(issued.token.id), "token_hint": issued.token.hint},
        )
    return issued


def user_token_issue(*, user, name: str, lifetime_seconds: int | None = None) -> IssuedUserToken:
    lifetime = tokens.lifetime(
        seconds=lifetime_seconds,
        default=settings.CODERAUTH_USER_TOKEN_LIFETIME,
        maximum=settings.CODERAUTH_USER_TOKEN_MAX_LIFETIME,
    )
    with transaction.atomic():
        issued = _issue(user=user, kind=UserToken.KIND_API, name=name, lifetime=lifetime)
        audit_record(
            action=actions.USER_TOKEN_ISSUED,
            actor_type="user",
            actor=user.username,
            details={
                "token_id": str(issued.token.id),
                "token_hint": issued.token.hint,
                "name": name,
                "expires_at": issued.token.expires_at.isoformat(),
            },
        )
    return issued


def user_token_revoke(*, user, token: UserToken) -> None:
    with transaction.atomic():
        updated = UserToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        if updated:
            audit_record(
                action=actions.USER_TOKEN_REVOKED,
                actor_type="user",
                actor=user.username,
                details={"token_id": str(token.id), "token_hint": token.hint, "name": token.name},
            )


# Account changes made in the Django admin. Django's add, change and delete views run in one transaction,
# so these services' audit rows commit with the change or the change is rolled back (fail closed).

# Fields that decide what a user may do: their values go into the audit row, before and after.
_PRIVILEGE_FIELDS = ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")
# Other account fields: only the fact that they changed is recorded.
_PROFILE_FIELDS = ("username", "first_name", "last_name", "email")


@dataclass(frozen=True)
class UserAccountSnapshot:
    """An account's state as stored, to compare before and after an admin edit. Never put in an audit row."""

    username: str
    first_name: str
    last_name: str
    email: str
    is_active: bool
    is_staff: bool
    is_superuser: bool
    groups: tuple[str, ...]
    user_permissions: tuple[str, ...]
    password_hash: str

    def privileges(self) -> dict:
        values = {field: getattr(self, field) for field in _PRIVILEGE_FIELDS}
        return {field: list(value) if isinstance(value, tuple) else value for field, value in values.items()}


def user_account_snapshot(*, user_id) -> UserAccountSnapshot | None:
    """The stored state of an account (None if there is none): read from the database, not from a form."""
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        return None
    return UserAccountSnapshot(
        username=user.get_username(),
        first_name=user.first_name,
        last_name=user.last_name,
        email=user.email,
        is_active=user.is_active,
        is_staff=user.is_staff,
        is_superuser=user.is_superuser,
        groups=tuple(sorted(user.groups.values_list("name", flat=True))),
        user_permissions=tuple(
            sorted(
                f"{app_label}.{codename}"
                for app_label, codename in user.user_permissions.values_list("content_type__app_label", "codename")
            )
        ),
        password_hash=user.password,
    )


def user_admin_save_record(*, actor, user, before: UserAccountSnapshot | None, method: str = "admin") -> None:
    """Audit an account added (before=None) or changed in the Django admin, once it and its relations are saved.

    `user.updated` names every changed field and gives before/after values of the privilege fields only;
    a new password is the boolean `password_changed`, never the hash. Nothing changed: no row.
    `actor=None` is a management command (actor_type `system`, actor = `method`), such as seed_demo.
    """
    actor_type, actor_name = ("system", method) if actor is None else ("user", actor.get_username())
    with transaction.atomic():
        after = user_account_snapshot(user_id=user.pk)
        if before is None:
            audit_record(
                action=actions.USER_CREATED,
                actor_type=actor_type,
                actor=actor_name,
                details={
                    "method": method,
                    "user_id": user.pk,
                    "username": after.username,
                    "has_usable_password": user.has_usable_password(),
                    **after.privileges(),
                },
            )
            return
        changed = [
            field for field in (*_PROFILE_FIELDS, *_PRIVILEGE_FIELDS) if getattr(before, field) != getattr(after, field)
        ]
        password_changed = before.password_hash != after.password_hash
        if not changed and not password_changed:
            return
        before_privileges, after_privileges = before.privileges(), after.privileges()
        audit_record(
            action=actions.USER_UPDATED,
            actor_type=actor_type,
            actor=actor_name,
            details={
                "method": method,
                "user_id": user.pk,
                "username": after.username,
                "changed": changed,
                "password_changed": password_changed,
                "from": {field: before_privileges[field] for field in changed if field in before_privileges},
                "to": {field: after_privileges[field] for field in changed if field in after_privileges},
            },
        )


def user_admin_delete(*, actor, user) -> None:
    """Delete an account from the Django admin, with a `user.deleted` row counting what went with it.

    Workspaces protect their owner (on_delete=PROTECT): a user who owns any cannot be deleted here.
    """
    with transaction.atomic():
        before = user_account_snapshot(user_id=user.pk)
        removed = {
            "user_tokens": UserToken.objects.filter(user=user).count(),
            "live_user_tokens": UserToken.objects.filter(live_token_q(timezone.now()), user=user).count(),
            "git_ssh_keys": GitSSHKey.objects.filter(user=user).count(),
            "external_auth_links": ExternalAuthLink.objects.filter(user=user).count(),
        }
        user_id = user.pk
        user.delete()
        audit_record(
            action=actions.USER_DELETED,
            actor_type="user",
            actor=actor.get_username(),
            details={
                "method": "admin",
                "user_id": user_id,
                "username": before.username,
                "removed": removed,
                **before.privileges(),
            },
        )


def user_admin_delete_many(*, actor, users) -> None:
    """The admin's bulk delete: every account is deleted and audited as by `user_admin_delete`, all or none."""
    with transaction.atomic():
        for user in users:
            user_admin_delete(actor=actor, user=user)
