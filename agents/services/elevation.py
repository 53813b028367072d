"""Just-in-time elevation: an agent asks for scopes its mode does not allow, a person decides, the grant lapses.

States (docs/elevation.md): `pending` until decided or until CODERAUTH_ELEVATION_PENDING_SECONDS pass,
`approved` until `expires_at`, `denied`, `revoked`; `expired` is read from the clock, never stored. The grant
itself is read by the agent hot path's one statement (agents/services/principals.py), so nothing here has to
run for a grant to start or end. The `access_request.expired` audit row is written once per lapsed request:
the first time it is read, listed or decided after it lapsed, or by `manage.py expire_access_requests`.

Locks, in the order of agents/services/locks.py: the workspace (share), the agent, then the request row, the
audit chain last. Creation takes the agent's row exclusively, so two racing requests of one agent cannot both
find no open request; decisions lock the request row, so approve, deny, revoke and expiry are serialised.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from agents.models import AccessRequest
from agents.services import locks
from agents.services.notifications import elevation_event_enqueue
from audit import actions
from audit.services import audit_record
from core.exceptions import Conflict, InvalidInput, NotPermitted, ObjectNotFound
from policies import rules
from policies.principals import AgentPrincipal
from policies.scopes import AGENT_CONNECT, ALL_SCOPES, ordered

REASON_MAX_LENGTH = 500
MIN_DURATION_SECONDS = 60

# The lineage of a token up to its root (the user-issued token): depth is capped, so the walk is short.
_ROOT_SCOPES_SQL = """
WITH RECURSIVE lineage AS (
    SELECT id, parent_id, scopes FROM agents_agenttoken WHERE id = %s
    UNION ALL
    SELECT parent.id, parent.parent_id, parent.scopes
    FROM agents_agenttoken parent JOIN lineage ON parent.id = lineage.parent_id
)
SELECT scopes FROM lineage WHERE parent_id IS NULL
"""


def _pending_window() -> timedelta:
    return timedelta(seconds=settings.CODERAUTH_ELEVATION_PENDING_SECONDS)


def access_request_state(request: AccessRequest, *, now: datetime | None = None) -> str:
    """The state as read now: a pending request past its waiting time, or an approved one past `expires_at`, is
    `expired`."""
    now = now or timezone.now()
    if request.state == AccessRequest.PENDING and request.requested_at + _pending_window() <= now:
        return AccessRequest.EXPIRED
    if request.state == AccessRequest.APPROVED and request.expires_at <= now:
        return AccessRequest.EXPIRED
    return request.state


def access_request_time_left(request: AccessRequest, *, now: datetime | None = None) -> timedelta | None:
    """How long an approved grant still runs, or how long a pending request still waits; None otherwise."""
    now = now or timezone.now()
    state = access_request_state(request, now=now)
    if state == AccessRequest.APPROVED:
        return request.expires_at - now
    if state == AccessRequest.PENDING:
        return request.requested_at + _pending_window() - now
    return None


def open_q(now: datetime) -> Q:
    """Requests that still bind: pending and waiting, or approved and live."""
    return Q(state=AccessRequest.PENDING, requested_at__gt=now - _pending_window()) | Q(
        state=AccessRequest.APPROVED, expires_at__gt=now
    )


def lapsed_q(now: datetime) -> Q:
    """Requests that read `expired` now."""
    return Q(state=AccessRequest.PENDING, requested_at__lte=now - _pending_window()) | Q(
        state=AccessRequest.APPROVED, expires_at__lte=now
    )


def _details(request: AccessRequest, **extra) -> dict:
    return {
        "request_id": str(request.id),
        "scopes": list(request.scopes),
        "reason": request.reason,
        "duration_seconds": request.duration_seconds,
        **extra,
    }


def _clean_reason(reason, *, field: str = "reason") -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("A reason is required.", field=field)
    reason = reason.strip()
    if len(reason) > REASON_MAX_LENGTH:
        raise InvalidInput(f"At most {REASON_MAX_LENGTH} characters.", field=field)
    return reason


def _check_duration(duration_seconds, *, maximum: int, field: str = "duration_seconds") -> int:
    if isinstance(duration_seconds, bool) or not isinstance(duration_seconds, int):
        raise InvalidInput("Must be an integer number of seconds.", field=field)
    if not MIN_DURATION_SECONDS <= duration_seconds <= maximum:
        raise InvalidInput(f"Must be between {MIN_DURATION_SECONDS} and {maximum} seconds.", field=field)
    return duration_seconds


def _root_scopes(token_id) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(_ROOT_SCOPES_SQL, [token_id])
        row = cursor.fetchone()
    return set(row[0]) if row else set()


def access_request_create(
    *, principal: AgentPrincipal, scopes: list[str], reason: str, duration_seconds: int
) -> AccessRequest:
    """An agent asks for `scopes` for `duration_seconds`. Only agent scopes its effective mode does not allow now
    and that the root of the asking token's lineage carries (a child such as the MCP server's asks on the
    agent's behalf; it never uses a scope it lacks). One open request per agent (Conflict naming it)."""
    if AGENT_CONNECT not in principal.allowed_scopes:
        raise NotPermitted(f"Asking for scopes needs {AGENT_CONNECT}.")
    if not isinstance(scopes, (list, tuple)) or not scopes:
        raise InvalidInput("Name at least one scope.", field="scopes")
    unknown = [scope for scope in scopes if scope not in ALL_SCOPES]
    if unknown:
        raise InvalidInput(f"Not agent scopes: {', '.join(map(str, unknown))}.", field="scopes")
    requested = set(scopes)
    reason = _clean_reason(reason)
    duration_seconds = _check_duration(duration_seconds, maximum=settings.CODERAUTH_ELEVATION_MAX_SECONDS)
    with transaction.atomic():
        # The agent's row, exclusively: two racing requests of one agent are serialised here, and the second
        # sees the first as open. The effective mode is read fresh under the same locks.
        agent, _ = locks.agent_with_modes_lock(principal.agent_id, agent_share=False)
        mode = agent.effective_permission_mode
        already = requested & mode.scope_set()
        if already:
            raise InvalidInput(
                f"Already allowed by the mode '{mode.name}': {', '.join(ordered(already))}.", field="scopes"
            )
        beyond_root = requested - _root_scopes(principal.token_id)
        if beyond_root:
            raise InvalidInput(
                f"Not carried by this token's user-issued root token: {', '.join(ordered(beyond_root))}.",
                field="scopes",
            )
        now = timezone.now()
        open_request = AccessRequest.objects.filter(open_q(now), agent_id=agent.id).first()
        if open_request is not None:
            raise Conflict(
                "This agent already has an open access request; wait for its decision or expiry.",
                extra={"id": str(open_request.id)},
            )
        access_request = AccessRequest.objects.create(
            agent=agent,
            workspace=agent.workspace,
            token_id=principal.token_id,
            scopes=ordered(requested),
            reason=reason,
            duration_seconds=duration_seconds,
            requested_at=now,
        )
        audit_record(
            action=actions.ACCESS_REQUEST_CREATED,
            actor_type="agent",
            actor=str(principal.agent_id),
            workspace_id=agent.workspace_id,
            agent_id=agent.id,
            details=_details(access_request, token_id=str(principal.token_id), token_hint=principal.token_hint),
        )
        elevation_event_enqueue(
            event=actions.ACCESS_REQUEST_CREATED, access_request=access_request, actor_name=agent.name
        )
    return access_request


def _record_expired(access_request: AccessRequest, *, now: datetime, actor_type: str, actor: str) -> None:
    """The `access_request.expired` row, once: the caller holds the request's row lock."""
    was = access_request.state
    access_request.expired_recorded_at = now
    access_request.save(update_fields=["expired_recorded_at"])
    audit_record(
        action=actions.ACCESS_REQUEST_EXPIRED,
        actor_type=actor_type,
        actor=actor,
        workspace_id=access_request.workspace_id,
        agent_id=access_request.agent_id,
        details=_details(
            access_request,
            was=was,
            decision_reason=access_request.decision_reason,
            expires_at=access_request.expires_at.isoformat() if access_request.expires_at else None,
        ),
    )


def _expire_locked(queryset: QuerySet[AccessRequest], *, now: datetime, batch_size: int, actor: str) -> int:
    """Record the lapsed, unrecorded requests of `queryset`, at most `batch_size`, in one transaction. Rows a
    decision holds are skipped: that decision records them itself."""
    with transaction.atomic():
        due = list(
            queryset.select_related(None)
            .filter(lapsed_q(now), expired_recorded_at__isnull=True)
            .order_by("requested_at", "id")
            .select_for_update(no_key=True, skip_locked=True, of=("self",))[:batch_size]
        )
        for access_request in due:
            _record_expired(access_request, now=now, actor_type="system", actor=actor)
    return len(due)


def access_requests_expire_due(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """Write `access_request.expired` for up to `batch_size` lapsed requests not yet recorded; the count written.
    Safe to run at any time and in parallel: each request is recorded once."""
    return _expire_locked(
        AccessRequest.objects.all(), now=now or timezone.now(), batch_size=batch_size, actor="expire_access_requests"
    )


def access_requests_expired_record(*, queryset: QuerySet[AccessRequest], now: datetime | None = None) -> None:
    """Lazy expiry for a read: record the lapsed requests among `queryset` (one query when there are none)."""
    now = now or timezone.now()
    if queryset.filter(lapsed_q(now), expired_recorded_at__isnull=True).exists():
        _expire_locked(queryset, now=now, batch_size=500, actor="lazy")


def access_request_find(*, request_id) -> AccessRequest | None:
    """The request by id, whoever may see it (the callers apply the rules), or None; a malformed id is None."""
    try:
        request_id = uuid.UUID(str(request_id))
    except ValueError:
        return None
    return AccessRequest.objects.select_related("workspace", "agent").filter(pk=request_id).first()


def _decide(*, actor, request_id, allowed_from: str, apply) -> AccessRequest:
    """Lock the request (after its workspace and agent, in the lock order), check who decides and the state read
    now, then `apply(access_request, now)`. A request that lapsed meanwhile is recorded as expired and refused."""
    found = access_request_find(request_id=request_id)
    if found is None:
        raise ObjectNotFound("No such access request.")
    rules.require_access_request_decider(actor, owner_id=found.workspace.owner_id)
    refused = None
    with transaction.atomic():
        workspace = locks.workspace_lock(found.workspace_id, share=True)
        locks.agent_lock(found.agent_id, share=True)
        access_request = AccessRequest.objects.select_for_update(no_key=True).filter(pk=found.pk).first()
        if access_request is None:
            refused = ObjectNotFound("No such access request.")
        else:
            # The owner as locked: a workspace handed to someone else meanwhile is decided by its new owner.
            rules.require_access_request_decider(actor, owner_id=workspace.owner_id)
            now = timezone.now()
            state = access_request_state(access_request, now=now)
            if state == AccessRequest.EXPIRED and access_request.expired_recorded_at is None:
                _record_expired(access_request, now=now, actor_type="system", actor="lazy")
            if state != allowed_from:
                refused = Conflict(
                    f"The access request is {state}, not {allowed_from}.",
                    extra={"id": str(access_request.id), "state": state},
                )
            else:
                access_request.workspace = workspace
                apply(access_request, now)
    if refused is not None:
        raise refused
    return access_request


def _decision_audit(action: str, access_request: AccessRequest, *, actor, **extra) -> None:
    audit_record(
        action=action,
        actor_type="user",
        actor=actor.username,
        workspace_id=access_request.workspace_id,
        agent_id=access_request.agent_id,
        details=_details(access_request, **extra),
    )
    elevation_event_enqueue(event=action, access_request=access_request, actor_name=actor.username)


def access_request_approve(*, actor, request_id, reason: str, duration_seconds: int | None = None) -> AccessRequest:
    """Grant a pending request from now, for its duration or a shorter one (never longer)."""
    reason = _clean_reason(reason)

    def apply(access_request: AccessRequest, now: datetime) -> None:
        granted = access_request.duration_seconds
        if duration_seconds is not None:
            granted = _check_duration(duration_seconds, maximum=access_request.duration_seconds)
        access_request.state = AccessRequest.APPROVED
        access_request.decided_at = now
        access_request.decided_by = actor
        access_request.decision_reason = reason
        access_request.expires_at = now + timedelta(seconds=granted)
        access_request.save(update_fields=["state", "decided_at", "decided_by", "decision_reason", "expires_at"])
        _decision_audit(
            actions.ACCESS_REQUEST_APPROVED,
            access_request,
            actor=actor,
            decision_reason=reason,
            granted_seconds=granted,
            expires_at=access_request.expires_at.isoformat(),
        )

    return _decide(actor=actor, request_id=request_id, allowed_from=AccessRequest.PENDING, apply=apply)


def access_request_deny(*, actor, request_id, reason: str) -> AccessRequest:
    """Refuse a pending request."""
    reason = _clean_reason(reason)

    def apply(access_request: AccessRequest, now: datetime) -> None:
        access_request.state = AccessRequest.DENIED
        access_request.decided_at = now
        access_request.decided_by = actor
        access_request.decision_reason = reason
        access_request.save(update_fields=["state", "decided_at", "decided_by", "decision_reason"])
        _decision_audit(actions.ACCESS_REQUEST_DENIED, access_request, actor=actor, decision_reason=reason)

    return _decide(actor=actor, request_id=request_id, allowed_from=AccessRequest.PENDING, apply=apply)


def access_request_revoke(*, actor, request_id, reason: str) -> AccessRequest:
    """End a live grant now: the agent's next request no longer has its scopes."""
    reason = _clean_reason(reason)

    def apply(access_request: AccessRequest, now: datetime) -> None:
        access_request.state = AccessRequest.REVOKED
        access_request.revoked_at = now
        access_request.revoked_by = actor
        access_request.revoke_reason = reason
        access_request.save(update_fields=["state", "revoked_at", "revoked_by", "revoke_reason"])
        _decision_audit(
            actions.ACCESS_REQUEST_REVOKED,
            access_request,
            actor=actor,
            decision_reason=access_request.decision_reason,
            revoke_reason=reason,
            expires_at=access_request.expires_at.isoformat(),
        )

    return _decide(actor=actor, request_id=request_id, allowed_from=AccessRequest.APPROVED, apply=apply)
