"""Who is calling: an agent token resolved to its AgentPrincipal, a user token to its user.

Checks run in a fixed order, cheapest first: format and checksum (no database, done by the caller with
core.tokens) -> one digest lookup -> revoked -> expired -> owner active. Unknown, revoked and expired tokens
end the same way (None) to guard against enumeration; only the audit trail and the log tell them apart.

While a digest key is being rotated (CODERAUTH_TOKEN_DIGEST_KEY_PREVIOUS), a token the current key does not
find is looked up under the previous keys and, when found, moved to the current key: its first request after
the rotation costs two more queries, every later one the usual single lookup.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agents.models import AgentToken, UserToken
from agents.services.rotation import agent_token_lineage_revoke
from audit import actions
from audit.folding import fold_due
from audit.services import audit_record
from core import tokens
from core.db import fetchone_with_reconnect
from policies.principals import AgentPrincipal

logger = logging.getLogger(__name__)

# One statement per request, prepared once per connection: an indexed equality lookup that also resolves
# the effective mode (override, else workspace) and the agent's live just-in-time grant (an approved access
# request before its expiry: time alone ends it, with no job and no cache), and records the use when the last
# record is older than the resolution, or the current digest key's id when the row lacks it (stored before key
# ids were recorded).
# The CTE's UPDATE matches nothing on most requests, so there is no write per request; the SELECT reads the
# snapshot from before it.
_AGENT_TOKEN_SQL = """
WITH touched AS (
    UPDATE agents_agenttoken SET last_used_at = %(now)s, key_id = %(key_id)s
    WHERE digest = %(digest)s AND revoked_at IS NULL AND expires_at > %(now)s
      AND (last_used_at IS NULL OR last_used_at < %(touch_before)s OR key_id <> %(key_id)s)
    RETURNING id
)
SELECT t.id, t.hint, t.scopes, t.expires_at, t.revoked_at, t.parent_id,
       a.id, a.name, w.id, w.name, u.id, u.username,
       COALESCE(agent_mode.name, workspace_mode.name),
       COALESCE(agent_mode.scopes, workspace_mode.scopes),
       u.is_active, t.rotated_to_id, grant_row.id, grant_row.scopes
FROM agents_agenttoken t
JOIN agents_workspaceagent a ON a.id = t.agent_id
JOIN agents_workspace w ON w.id = a.workspace_id
JOIN auth_user u ON u.id = w.owner_id
JOIN policies_permissionmode workspace_mode ON workspace_mode.name = w.permission_mode
LEFT JOIN policies_permissionmode agent_mode ON agent_mode.name = a.permission_mode
LEFT JOIN LATERAL (
    SELECT r.id, r.scopes FROM agents_accessrequest r
    WHERE r.agent_id = a.id AND r.state = 'approved' AND r.expires_at > %(now)s
    ORDER BY r.expires_at DESC LIMIT 1
) grant_row ON TRUE
WHERE t.digest = %(digest)s
"""


def _should_touch(last_used_at: datetime | None, now: datetime) -> bool:
    return last_used_at is None or now - last_used_at >= settings.CODERAUTH_LAST_USED_RESOLUTION


def _agent_token_row(raw_token: str, now: datetime) -> tuple | None:
    # Safe to run twice (the CTE's UPDATE writes the same values again), so the lookup stands in for the
    # connection's per-request health check and is retried once on a new connection if the kept one is dead.
    return fetchone_with_reconnect(
        _AGENT_TOKEN_SQL,
        {
            "digest": tokens.digest(raw_token),
            "key_id": tokens.digest_key_id(),
            "now": now,
            "touch_before": now - settings.CODERAUTH_LAST_USED_RESOLUTION,
        },
    )


def _token_rekey(model: type[AgentToken] | type[UserToken], raw_token: str) -> bool:
    """Move a token stored under a previous digest key to the current one; False when no previous key is set.

    Called only after the current key found nothing, so tokens under the current key never pay for it. A
    concurrent request may move the same row first (this UPDATE then matches nothing), so the caller looks
    the token up again whenever this returns True."""
    previous = tokens.previous_digests(raw_token)
    if not previous:
        return False
    moved = model.objects.filter(digest__in=previous).update(
        digest=tokens.digest(raw_token), key_id=tokens.digest_key_id()
    )
    if moved:
        logger.info("Token %s moved from a previous digest key to the current one", tokens.display_hint(raw_token))
    return True


def agent_principal_resolve(*, raw_token: str) -> AgentPrincipal | None:
    """The principal of a well-formed `cda_` token, in one query; None when it is unknown, revoked or expired,
    or its workspace owner is inactive. A known token refused for a reason is audited (rate-limited)."""
    now = timezone.now()
    row = _agent_token_row(raw_token, now)
    if row is None and _token_rekey(AgentToken, raw_token):
        row = _agent_token_row(raw_token, now)
    if row is None:
        # Nobody issued it: no principal to audit, so the log gets the hint only.
        logger.warning("Unknown agent token presented: %s", tokens.display_hint(raw_token))
        return None

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
        rotated_to_id,
        grant_id,
        granted_scopes,
    ) = row
    if revoked_at is not None or expires_at <= now or not owner_active:
        # A rotated-out token presented again: two holders, so its lineage goes (recorded as reuse). Once the
        # lineage is dead there is nothing left to revoke, and it is refused like any revoked token.
        if rotated_to_id is not None and agent_token_lineage_revoke(
            token_id=token_id, agent_id=agent_id, workspace_id=workspace_id
        ):
            return None
        reason = "revoked" if revoked_at is not None else ("expired" if expires_at <= now else "owner_inactive")
        agent_token_rejection_record(
            token_id=token_id, hint=hint, agent_id=agent_id, workspace_id=workspace_id, reason=reason
        )
        return None

    return AgentPrincipal(
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
        grant_id=grant_id,
        granted_scopes=frozenset(granted_scopes or ()),
    )


def agent_token_rejection_record(*, token_id, hint: str, agent_id, workspace_id, reason: str) -> None:
    """A known token after expiry or revocation may be a leak: worth an audit event, at most one per agent per
    CODERAUTH_LAST_USED_RESOLUTION (audit/folding.py), so neither a replay loop nor a tree of pre-minted children
    replayed one by one can flood the audit table. The row's `folded` counts the rejections of that agent since
    its previous row that got no row of their own. Every attempt is logged."""
    logger.warning("Rejected agent token presented: %s (%s)", hint, reason)
    with transaction.atomic():
        folded = fold_due(f"agent_rejections_{agent_id}")
        if folded is None:
            return
        audit_record(
            action=actions.AGENT_TOKEN_REJECTED,
            actor_type="agent",
            actor=str(agent_id),
            workspace_id=workspace_id,
            agent_id=agent_id,
            details={"token_id": str(token_id), "token_hint": hint, "reason": reason, "folded": folded},
        )


def user_token_resolve(*, raw_token: str) -> UserToken | None:
    """The live token (with its user) of a well-formed `cdu_` token, or None; records the use once a resolution."""
    token = _user_token_find(raw_token)
    if token is None and _token_rekey(UserToken, raw_token):
        token = _user_token_find(raw_token)
    now = timezone.now()
    if token is None or not token.is_live(now) or not token.user.is_active:
        if token is None:
            logger.warning("Unknown user token presented: %s", tokens.display_hint(raw_token))
        return None
    key_id = tokens.digest_key_id()
    if _should_touch(token.last_used_at, now) or token.key_id != key_id:
        UserToken.objects.filter(pk=token.pk).update(last_used_at=now, key_id=key_id)
    return token


def _user_token_find(raw_token: str) -> UserToken | None:
    return UserToken.objects.select_related("user").filter(digest=tokens.digest(raw_token)).first()
