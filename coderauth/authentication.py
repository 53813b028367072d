"""The two authentication flows (DESIGN.md §2-§4). Each stands alone and refuses the other's tokens.

Checks run in a fixed order, cheapest first: header -> prefix -> format and checksum (no
database) -> one digest lookup -> revoked -> expired. Unknown, revoked and expired tokens
get the same message to guard against enumeration.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import psycopg
from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone
from rest_framework import authentication, exceptions

from coderauth import tokens

logger = logging.getLogger(__name__)

INVALID_TOKEN = "Invalid, expired or revoked token."
MALFORMED_TOKEN = "Malformed token."
AGENT_TOKEN_REQUIRED = "This route requires an agent token; user tokens are not accepted here."
USER_TOKEN_REQUIRED = "This route requires a user session or user token; agent tokens are not accepted here."


def token_from_headers(request) -> str | None:
    """`Authorization: Bearer <token>` or Coder's `Coder-Session-Token`; never the query string."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip() or " " in credentials.strip():
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <token>'.")
        return credentials.strip()
    coder_header = request.headers.get("Coder-Session-Token", "").strip()
    return coder_header or None


def _should_touch(last_used_at: datetime | None, now: datetime) -> bool:
    return last_used_at is None or now - last_used_at >= settings.CODERAUTH_LAST_USED_RESOLUTION


@dataclass(frozen=True)
class AgentPrincipal:
    """The authenticated agent of a request, with everything authorization needs, from one query."""

    token_id: UUID
    token_hint: str
    token_scopes: frozenset[str]
    token_expires_at: datetime
    parent_id: UUID | None
    agent_id: UUID
    agent_name: str
    workspace_id: UUID
    workspace_name: str
    owner_id: int
    owner_username: str
    mode_name: str
    mode_scopes: frozenset[str]

    is_authenticated = True
    is_anonymous = False

    @property
    def allowed_scopes(self) -> frozenset[str]:
        """Token scopes ∩ the effective mode's scopes, as read at the start of this request."""
        return self.token_scopes & self.mode_scopes

    def __str__(self) -> str:
        return f"agent {self.agent_id}"


# One statement per request, prepared once per connection: an indexed equality lookup that also resolves
# the effective mode (override, else workspace), and records the use when the last record is older than the
# resolution. The CTE's UPDATE matches nothing on most requests, so there is no write per request;
# the SELECT reads the snapshot from before it.
_AGENT_TOKEN_SQL = """
WITH touched AS (
    UPDATE agents_agenttoken SET last_used_at = %(now)s
    WHERE digest = %(digest)s AND revoked_at IS NULL AND expires_at > %(now)s
      AND (last_used_at IS NULL OR last_used_at < %(touch_before)s)
    RETURNING id
)
SELECT t.id, t.hint, t.scopes, t.expires_at, t.revoked_at, t.parent_id,
       a.id, a.name, w.id, w.name, u.id, u.username,
       COALESCE(agent_mode.name, workspace_mode.name),
       COALESCE(agent_mode.scopes, workspace_mode.scopes),
       u.is_active
FROM agents_agenttoken t
JOIN agents_workspaceagent a ON a.id = t.agent_id
JOIN agents_workspace w ON w.id = a.workspace_id
JOIN auth_user u ON u.id = w.owner_id
JOIN policies_permissionmode workspace_mode ON workspace_mode.name = w.permission_mode
LEFT JOIN policies_permissionmode agent_mode ON agent_mode.name = a.permission_mode
WHERE t.digest = %(digest)s
"""


# Django turns psycopg's automatic preparation off (prepare_threshold=None, for connection poolers) and its
# client-side-binding cursors never prepare; psycopg then also ignores prepare=True. A threshold no statement
# reaches keeps automatic preparation off and lets the lookup cursor below ask for it explicitly.
_PREPARE_ONLY_WHEN_ASKED = sys.maxsize


class _PreparingCursor(psycopg.Cursor):
    """Server-side binding, every statement prepared: parsed and planned once per connection, psycopg keeps the name."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True, binary=binary)


def _prepared_statement_cursor():
    """A Django cursor (health-checked, logged and counted as a query, errors wrapped) that prepares its statements.

    Planning the lookup's six-table join costs about 1 ms on these machines, ten times running it: prepared once
    per connection, the lookup takes about 0.1 ms a request (docs/benchmarks.md, "Agent hot path").
    """
    if not settings.CODERAUTH_PREPARED_AGENT_LOOKUP:
        return connection.cursor()
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    raw_connection = connection.connection
    if raw_connection.prepare_threshold is None:
        raw_connection.prepare_threshold = _PREPARE_ONLY_WHEN_ASKED
    with connection.wrap_database_errors:
        cursor = _PreparingCursor(raw_connection)
    return connection.make_debug_cursor(cursor) if connection.queries_logged else connection.make_cursor(cursor)


class AgentTokenAuthentication(authentication.BaseAuthentication):
    """Agent routes only: accepts `cda_` tokens, refuses user tokens and sessions."""

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="agent"'

    def authenticate(self, request):
        raw = token_from_headers(request)
        if raw is None:
            return None
        kind = tokens.kind_of(raw)
        if kind == "user":
            raise exceptions.AuthenticationFailed(AGENT_TOKEN_REQUIRED)
        if kind != "agent" or not tokens.is_well_formed(raw, "agent"):
            raise exceptions.AuthenticationFailed(MALFORMED_TOKEN)

        now = timezone.now()
        with _prepared_statement_cursor() as cursor:
            cursor.execute(
                _AGENT_TOKEN_SQL,
                {
                    "digest": tokens.digest(raw),
                    "now": now,
                    "touch_before": now - settings.CODERAUTH_LAST_USED_RESOLUTION,
                },
            )
            row = cursor.fetchone()
        if row is None:
            # Nobody issued it: no principal to audit, so the log gets the hint only.
            logger.warning("Unknown agent token presented: %s", tokens.display_hint(raw))
            raise exceptions.AuthenticationFailed(INVALID_TOKEN)

        (
            token_id,
            hint,
            token_scopes,
            expires_at,
            revoked_at,
            parent_id,
            agent_id,
            agent_name,
            workspace_id,
            workspace_name,
            owner_id,
            owner_username,
            mode_name,
            mode_scopes,
            owner_active,
        ) = row
        if revoked_at is not None or expires_at <= now or not owner_active:
            reason = "revoked" if revoked_at is not None else ("expired" if expires_at <= now else "owner_inactive")
            self._record_rejection(token_id, hint, agent_id, workspace_id, reason)
            raise exceptions.AuthenticationFailed(INVALID_TOKEN)

        principal = AgentPrincipal(
            token_id=token_id,
            token_hint=hint,
            token_scopes=frozenset(token_scopes),
            token_expires_at=expires_at,
            parent_id=parent_id,
            agent_id=agent_id,
            agent_name=agent_name,
            workspace_id=workspace_id,
            workspace_name=workspace_name,
            owner_id=owner_id,
            owner_username=owner_username,
            mode_name=mode_name,
            mode_scopes=frozenset(mode_scopes),
        )
        return principal, principal

    @staticmethod
    def _record_rejection(token_id, hint, agent_id, workspace_id, reason: str) -> None:
        """A known token after expiry or revocation may be a leak: worth an audit event, at most one per token
        per CODERAUTH_LAST_USED_RESOLUTION so a replay loop cannot flood the audit table. Every attempt is logged."""
        from agents.models import AgentToken
        from audit.services import audit_record

        logger.warning("Rejected agent token presented: %s (%s)", hint, reason)
        now = timezone.now()
        with transaction.atomic():
            first_in_period = (
                AgentToken.objects.filter(pk=token_id)
                .filter(
                    models.Q(last_rejected_at__isnull=True)
                    | models.Q(last_rejected_at__lte=now - settings.CODERAUTH_LAST_USED_RESOLUTION)
                )
                .update(last_rejected_at=now)
            )
            if first_in_period:
                audit_record(
                    action="agent_token.rejected",
                    actor_type="agent",
                    actor=str(agent_id),
                    workspace_id=workspace_id,
                    agent_id=agent_id,
                    details={"token_id": str(token_id), "token_hint": hint, "reason": reason},
                )


class UserTokenAuthentication(authentication.BaseAuthentication):
    """User routes: `cdu_` session and API tokens. Agent tokens are refused outright."""

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="user"'

    def authenticate(self, request):
        raw = token_from_headers(request)
        if raw is None:
            return None
        kind = tokens.kind_of(raw)
        if kind == "agent":
            raise exceptions.AuthenticationFailed(USER_TOKEN_REQUIRED)
        if kind != "user" or not tokens.is_well_formed(raw, "user"):
            raise exceptions.AuthenticationFailed(MALFORMED_TOKEN)

        from agents.models import UserToken

        token = UserToken.objects.select_related("user").filter(digest=tokens.digest(raw)).first()
        now = timezone.now()
        if token is None or not token.is_live(now) or not token.user.is_active:
            if token is None:
                logger.warning("Unknown user token presented: %s", tokens.display_hint(raw))
            raise exceptions.AuthenticationFailed(INVALID_TOKEN)
        if _should_touch(token.last_used_at, now):
            UserToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token


class UserSessionAuthentication(authentication.SessionAuthentication):
    """The web UI's session cookie, with CSRF enforced on unsafe methods (DRF's behaviour)."""
