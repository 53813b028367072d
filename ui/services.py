"""Writes of the web UI itself: only the audit of browser logins (docs/audit.md records every login)."""

from __future__ import annotations

from django.db import transaction

from audit import actions
from audit.services import audit_record


def web_login_record(*, user) -> None:
    with transaction.atomic():
        audit_record(action=actions.USER_LOGIN, actor_type="user", actor=user.username, details={"method": "web"})


def web_login_failed_record(*, username: str) -> None:
    with transaction.atomic():
        audit_record(
            action=actions.USER_LOGIN_FAILED,
            actor_type="user",
            actor=username[:150],
            details={"method": "web", "reason": "bad_credentials"},
        )
