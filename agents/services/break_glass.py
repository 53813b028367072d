"""Break-glass sign-in: a one-time, short-lived code that lets an admin into the web UI when neither a password
(CODERAUTH_PASSWORD_LOGIN=false) nor the OpenID Provider can be used.

Codes are made only from the server's shell (`manage.py break_glass_signin`), whose user could change the database
anyway; the command prints the code once and only a keyed digest is stored. The code is typed into a form (a POST
body), so it never appears in a URL, an access log or a browser's history.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from agents.models import BreakGlassCode
from audit import actions
from audit.services import audit_record
from core import tokens
from core.exceptions import InvalidInput, NotPermitted, ObjectNotFound
from core.roles import is_admin

METHOD = "break_glass"
PREFIX = "cdb_"
MAX_MINUTES = 60
COMMAND = "break_glass_signin"


@dataclass(frozen=True)
class IssuedBreakGlassCode:
    code: BreakGlassCode
    plaintext: str  # printed once by the command, never stored


class BreakGlassRefused(Exception):
    """The code signs nobody in. `reason` goes to the audit row only: the page says the same for every reason."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def break_glass_code_issue(*, username: str, minutes: int = 10) -> IssuedBreakGlassCode:
    """A code that signs in the active admin `username` once within `minutes` (1 to 60), audited as
    `user_token.issued` (kind `break_glass`, by the system actor `break_glass_signin`) with its hint only."""
    if not 1 <= minutes <= MAX_MINUTES:
        raise InvalidInput(f"A break-glass code lasts 1 to {MAX_MINUTES} minutes.", field="minutes")
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise ObjectNotFound(f"No user named {username!r}.")
    if not user.is_active or not is_admin(user):
        raise NotPermitted(f"{username!r} is not an active admin: only admins get a break-glass sign-in.")
    plaintext = PREFIX + "".join(secrets.choice(tokens.ALPHABET) for _ in range(tokens.RANDOM_LENGTH))
    now = timezone.now()
    with transaction.atomic():
        code = BreakGlassCode.objects.create(
            user=user,
            digest=tokens.digest(plaintext),
            hint=f"{PREFIX}…{plaintext[-4:]}",
            created_at=now,
            expires_at=now + timedelta(minutes=minutes),
        )
        audit_record(
            action=actions.USER_TOKEN_ISSUED,
            actor_type="system",
            actor=COMMAND,
            details={
                "kind": METHOD,
                "name": "break-glass sign-in",
                "token_id": str(code.id),
                "token_hint": code.hint,
                "user_id": user.pk,
                "username": user.get_username(),
                "expires_at": code.expires_at.isoformat(),
            },
        )
    return IssuedBreakGlassCode(code=code, plaintext=plaintext)


def break_glass_sign_in(*, code: str):
    """The admin whom `code` signs in, spending it (`user.login`, method `break_glass`). An unknown, used or
    expired code, or one whose user is no longer an active admin, raises BreakGlassRefused after `user.login_failed`.
    The code's row is locked while it is checked, so two requests racing with one code sign in only once."""
    now = timezone.now()
    with transaction.atomic():
        found = (
            BreakGlassCode.objects.select_for_update(of=("self",))
            .select_related("user")
            .filter(digest=tokens.digest(code.strip()))
            .first()
        )
        reason = _refusal(found, now)
        if reason is None:
            found.used_at = now
            found.save(update_fields=["used_at"])
            audit_record(
                action=actions.USER_LOGIN,
                actor_type="user",
                actor=found.user.get_username(),
                details={"method": METHOD, "token_id": str(found.id), "token_hint": found.hint},
            )
            return found.user
    details = {"method": METHOD, "reason": reason}
    if found is not None:
        details.update(token_id=str(found.id), token_hint=found.hint)
    with transaction.atomic():
        audit_record(
            action=actions.USER_LOGIN_FAILED,
            actor_type="user",
            actor=found.user.get_username() if found is not None else "",
            details=details,
        )
    raise BreakGlassRefused(reason)


def _refusal(found: BreakGlassCode | None, now) -> str | None:
    if found is None:
        return "unknown_code"
    if found.used_at is not None:
        return "used_code"
    if found.expires_at <= now:
        return "expired_code"
    if not found.user.is_active or not is_admin(found.user):
        return "not_admin"
    return None
