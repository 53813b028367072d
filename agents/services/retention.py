"""Removing rows whose use has passed. Logins and the MCP server's 15-minute working tokens leave a steady
stream of dead rows; once a token is past expiry or revoked, its row only serves the admin screens. Agent
logs and app statuses are operational data kept for a retention period (settings), the latest status of
each app excepted."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet

from agents.models import AgentLog, AgentToken, AppStatus, UserToken
from audit import actions
from audit.services import audit_record

TOKEN_MODELS = {"agent_token": AgentToken, "user_token": UserToken}
PURGED_ACTIONS = {"agent_token": actions.AGENT_TOKEN_PURGED, "user_token": actions.USER_TOKEN_PURGED}


def _dead_before(cutoff: datetime) -> Q:
    return Q(revoked_at__lt=cutoff) | Q(expires_at__lt=cutoff)


def dead_tokens_count(*, dead_before: datetime) -> dict[str, int]:
    return {kind: model.objects.filter(_dead_before(dead_before)).count() for kind, model in TOKEN_MODELS.items()}


def dead_tokens_purge_batch(*, kind: str, dead_before: datetime, batch_size: int) -> int:
    """Delete up to batch_size tokens of `kind` that were revoked or expired before `dead_before`, with one
    `<kind>.purged` audit row in the same transaction. Returns how many rows went (0: nothing left).

    A dead agent token's children died no later than it did (revocation takes the subtree; a child never
    outlives its parent), so the cascade to them removes nothing that is still alive."""
    model = TOKEN_MODELS[kind]
    with transaction.atomic():
        ids = list(
            model.objects.filter(_dead_before(dead_before))
            .order_by("expires_at")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return 0
        deleted, _ = model.objects.filter(pk__in=ids).delete()
        audit_record(
            action=PURGED_ACTIONS[kind],
            actor_type="system",
            actor="purge_tokens",
            details={"count": deleted, "dead_before": dead_before.isoformat()},
        )
    return deleted


def _expired_agent_logs(received_before: datetime) -> QuerySet[AgentLog]:
    return AgentLog.objects.filter(received_at__lt=received_before)


def _expired_app_statuses(created_before: datetime) -> QuerySet[AppStatus]:
    """Statuses older than the cutoff that are not their app's latest: the agent pages show the latest status
    of each app however old it is. The latest one is never chosen, so concurrent runs cannot remove it."""
    newer = AppStatus.objects.filter(agent_id=OuterRef("agent_id"), app_slug=OuterRef("app_slug")).filter(
        Q(created_at__gt=OuterRef("created_at")) | Q(created_at=OuterRef("created_at"), pk__gt=OuterRef("pk"))
    )
    return AppStatus.objects.filter(Exists(newer), created_at__lt=created_before)


def expired_reports_count(*, logs_received_before: datetime, statuses_created_before: datetime) -> dict[str, int]:
    return {
        "agent_log": _expired_agent_logs(logs_received_before).count(),
        "app_status": _expired_app_statuses(statuses_created_before).count(),
    }


def _purge_batch(*, queryset: QuerySet, order_by: str, batch_size: int, action: str, cutoff: dict[str, str]) -> int:
    """Delete up to batch_size rows of `queryset`, oldest first, with one audit row (count and cutoff only) in
    the same transaction. Returns how many rows went (0: nothing left)."""
    with transaction.atomic():
        ids = list(queryset.order_by(order_by).values_list("pk", flat=True)[:batch_size])
        if not ids:
            return 0
        deleted, _ = queryset.model.objects.filter(pk__in=ids).delete()
        audit_record(action=action, actor_type="system", actor="purge_reports", details={"count": deleted, **cutoff})
    return deleted


def agent_logs_purge_batch(*, received_before: datetime, batch_size: int) -> int:
    """Delete up to batch_size log lines received before `received_before`, audited as `agent_log.purged`."""
    return _purge_batch(
        queryset=_expired_agent_logs(received_before),
        order_by="received_at",
        batch_size=batch_size,
        action=actions.AGENT_LOG_PURGED,
        cutoff={"received_before": received_before.isoformat()},
    )


def app_statuses_purge_batch(*, created_before: datetime, batch_size: int) -> int:
    """Delete up to batch_size app statuses created before `created_before`, each app's latest excepted,
    audited as `app_status.purged`."""
    return _purge_batch(
        queryset=_expired_app_statuses(created_before),
        order_by="created_at",
        batch_size=batch_size,
        action=actions.APP_STATUS_PURGED,
        cutoff={"created_before": created_before.isoformat()},
    )
