"""What agents report: app statuses and logs. Operational data, so not audited per row."""

from __future__ import annotations

from django.db import transaction

from agents.models import AgentLog, AppStatus
from policies.principals import AgentPrincipal


def app_status_report(
    *, principal: AgentPrincipal, app_slug: str, state: str, message: str, uri: str = ""
) -> AppStatus:
    return AppStatus.objects.create(
        agent_id=principal.agent_id, app_slug=app_slug, state=state, message=message, uri=uri
    )


def agent_logs_append(*, principal: AgentPrincipal, logs: list[dict]) -> int:
    with transaction.atomic():
        created = AgentLog.objects.bulk_create(
            AgentLog(
                agent_id=principal.agent_id, created_at=line["created_at"], level=line["level"], output=line["output"]
            )
            for line in logs
        )
    return len(created)
