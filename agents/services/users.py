"""Login, user tokens, password changes, and account changes made in the Django admin."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from importlib import import_module

from django.conf import settings
from django.contrib.auth import SESSION_KEY, authenticate, get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from agents.models import ExternalAuthLink, GitSSHKey, UserToken, live_token_q
from audit import actions
from audit.services import audit_record
from core import metrics, tokens
from core.exceptions import InvalidInput

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IssuedUserToken:
    token: UserToken
    plaintext: str  # shown once in the response, never stored


class LoginFailed(Exception):
    pass


_TOKEN_METRIC_KIND = {UserToken.KIND_SESSION: metrics.TOKEN_USER_SESSION, UserToken.KIND_API: metrics.TOKEN_USER_API}


def _issue(*, user, kind: str, name: str, lifetime: timedelta) -> IssuedUserToken:
    """Inside the caller's transaction: the metric counts the token once that commits."""
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
    metrics.token_issued(kind=_TOKEN_METRIC_KIND[kind])
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


# Password changes. Credentials follow the password: unless CODERAUTH_PASSWORD_CHANGE_REVOKES is off, the
# user's other API login sessions and API tokens are revoked and their other web sessions end, so whoever
# learnt the old password keeps nothing it opened. The credential that made the change is kept.


@dataclass(frozen=True)
class RevokedCredentials:
    """What a password change revoked. Sessions: web sessions and API login sessions; tokens: API tokens."""

    revoked_sessions: int
    revoked_tokens: int

    def summary(self) -> str:
        """`2 sessions and 1 API token`, for the pages that report a change."""
        sessions = f"{self.revoked_sessions} session{'' if self.revoked_sessions == 1 else 's'}"
        return f"{sessions} and {self.revoked_tokens} API token{'' if self.revoked_tokens == 1 else 's'}"


def user_password_change(
    *,
    actor,
    user,
    new_password: str | None,
    method: str,
    current_password: str | None = None,
    keep_session_key: str | None = None,
    keep_token_id=None,
) -> RevokedCredentials:
    """Set `user`'s password (None: no usable password) after Django's password validators, audit it as
    `user.password_changed` and revoke the user's other credentials (`user_password_changed_record`).

    `current_password`, when given, must be the user's password (a user changing their own).
    """
    if current_password is not None and not user.check_password(current_password):
        logger.warning("Password change refused for %s: wrong current password", user.get_username())
        raise InvalidInput("The current password is wrong.", field="current_password")
    if new_password is not None:
        try:
            validate_password(new_password, user)
        except ValidationError as error:
            raise InvalidInput(" ".join(error.messages), field="new_password") from error
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password"])
        return user_password_changed_record(
            actor=actor, user=user, method=method, keep_session_key=keep_session_key, keep_token_id=keep_token_id
        )


def user_password_changed_record(
    *, actor, user, method: str, keep_session_key: str | None = None, keep_token_id=None
) -> RevokedCredentials:
    """After Django's own code has saved a new password (the admin's forms, `changepassword`), inside the
    caller's transaction: revoke the user's other credentials and write `user.password_changed`.

    `actor=None` is a management command (actor_type `system`, actor = `method`). The row names what was
    revoked, never a password or its hash.
    """
    actor_type, actor_name = ("system", method) if actor is None else ("user", actor.get_username())
    now = timezone.now()
    with transaction.atomic():
        web_sessions, revoked = 0, []
        if settings.CODERAUTH_PASSWORD_CHANGE_REVOKES:
            web_sessions = _web_sessions_end(user=user, keep_session_key=keep_session_key, now=now)
            live = UserToken.objects.select_for_update().filter(live_token_q(now), user=user).exclude(pk=keep_token_id)
            revoked = list(live.order_by("created_at").values_list("id", "kind"))
            UserToken.objects.filter(pk__in=[token_id for token_id, _ in revoked]).update(revoked_at=now)
        session_tokens = [str(token_id) for token_id, kind in revoked if kind == UserToken.KIND_SESSION]
        api_tokens = [str(token_id) for token_id, kind in revoked if kind == UserToken.KIND_API]
        audit_record(
            action=actions.USER_PASSWORD_CHANGED,
            actor_type=actor_type,
            actor=actor_name,
            details={
                "method": method,
                "user_id": user.pk,
                "username": user.get_username(),
                "usable_password": user.has_usable_password(),
                "revokes": settings.CODERAUTH_PASSWORD_CHANGE_REVOKES,
                "web_sessions_ended": web_sessions,
                "session_tokens_revoked": session_tokens,
                "api_tokens_revoked": api_tokens,
            },
        )
    return RevokedCredentials(revoked_sessions=web_sessions + len(session_tokens), revoked_tokens=len(api_tokens))


def _web_sessions_end(*, user, keep_session_key: str | None, now) -> int:
    """End `user`'s web sessions but `keep_session_key`. Sessions are stored by key, not by user, so every live
    session is read (a password change is rare). With sessions kept outside the database (cookies, the cache)
    there is nothing to list: Django itself refuses them at their next request, their hash no longer matching."""
    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    if not hasattr(store_class, "get_model_class"):
        return 0
    live = store_class.get_model_class().objects.filter(expire_date__gt=now)
    if keep_session_key:
        live = live.exclude(session_key=keep_session_key)
    decoder = store_class()
    ended = 0
    for session_key, session_data in live.values_list("session_key", "session_data").iterator():
        if str(decoder.decode(session_data).get(SESSION_KEY)) == str(user.pk):
            store_class(session_key=session_key).delete()
            ended += 1
    return ended


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
