"""Login and user tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import authenticate
from django.db import transaction
from django.utils import timezone

from agents.models import UserToken
from audit.services import audit_record
from coderauth import tokens
from coderauth.exceptions import ServiceValidationError


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
                action="user.login_failed",
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
            action="user.login",
            actor_type="user",
            actor=user.username,
            details={"method": "password", "token_id": str(issued.token.id), "token_hint": issued.token.hint},
        )
    return issued


def user_token_issue(*, user, name: str, lifetime_seconds: int | None = None) -> IssuedUserToken:
    lifetime = (
        settings.CODERAUTH_USER_TOKEN_LIFETIME if lifetime_seconds is None else timedelta(seconds=lifetime_seconds)
    )
    if lifetime > settings.CODERAUTH_USER_TOKEN_MAX_LIFETIME:
        raise ServiceValidationError(
            f"lifetime_seconds may be at most {int(settings.CODERAUTH_USER_TOKEN_MAX_LIFETIME.total_seconds())}.",
            field="lifetime_seconds",
        )
    with transaction.atomic():
        issued = _issue(user=user, kind=UserToken.KIND_API, name=name, lifetime=lifetime)
        audit_record(
            action="user_token.issued",
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
                action="user_token.revoked",
                actor_type="user",
                actor=user.username,
                details={"token_id": str(token.id), "token_hint": token.hint, "name": token.name},
            )
