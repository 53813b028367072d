"""Webhook notifications of access requests: an outbox row per configured URL, written in the transaction of the
change it announces, so a notice is sent exactly for what committed (and at least once)."""

from __future__ import annotations

import json

from django.conf import settings
from django.utils import timezone

from agents.models import AccessRequest, WebhookDelivery

_VERBS = {
    "access_request.created": "asks for",
    "access_request.approved": "approved",
    "access_request.denied": "denied",
    "access_request.revoked": "revoked",
}


def _duration_text(seconds: int) -> str:
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


def _when(value) -> str | None:
    return value.isoformat() if value else None


def elevation_text(*, event: str, access_request: AccessRequest, actor_name: str) -> str:
    """One human line, e.g. "agent dev/main asks for agent:gitsshkey for 15 min: push release tag"."""
    agent = f"{access_request.workspace.name}/{access_request.agent.name}"
    scopes = ", ".join(access_request.scopes)
    if event == "access_request.created":
        return f"agent {agent} asks for {scopes} for {_duration_text(access_request.duration_seconds)}: " + (
            access_request.reason
        )
    verb = _VERBS.get(event, event)
    reason = access_request.revoke_reason if event == "access_request.revoked" else access_request.decision_reason
    return f"{actor_name} {verb} agent {agent}'s request for {scopes}: {reason}"


def elevation_event_enqueue(*, event: str, access_request: AccessRequest, actor_name: str) -> list[WebhookDelivery]:
    """One delivery row per URL in CODERAUTH_ELEVATION_WEBHOOK_URL (none when unset), due now. The caller's
    transaction commits them with the change, or rolls them back with it. The body holds no secret."""
    urls = list(settings.CODERAUTH_ELEVATION_WEBHOOK_URL)
    if not urls:
        return []
    workspace = access_request.workspace
    body = {
        "text": elevation_text(event=event, access_request=access_request, actor_name=actor_name),
        "event": event,
        "request": {
            "id": str(access_request.id),
            "state": access_request.state,
            "scopes": list(access_request.scopes),
            "reason": access_request.reason,
            "duration_seconds": access_request.duration_seconds,
            "requested_at": _when(access_request.requested_at),
            "expires_at": _when(access_request.expires_at),
            "agent_id": str(access_request.agent_id),
            "agent_name": access_request.agent.name,
            "workspace_id": str(workspace.id),
            "workspace_name": workspace.name,
            "owner": workspace.owner.username,
        },
        "actor": actor_name,
        "decision_reason": access_request.revoke_reason or access_request.decision_reason,
    }
    text = json.dumps(body, separators=(",", ":"), sort_keys=True)
    now = timezone.now()
    return WebhookDelivery.objects.bulk_create(
        [WebhookDelivery(event=event, url=url, body=text, next_attempt_at=now) for url in urls]
    )
