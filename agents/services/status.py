"""What agents report: app statuses and logs. Operational data, so not audited per row, but counted against
the agent's report quotas (agents/services/quotas.py) in the transaction that stores it."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from agents.models import AgentLog, AgentReportWindow, AppStatus
from agents.services.quotas import report_quota_spend
from core.exceptions import InvalidInput
from policies.principals import AgentPrincipal


def _utf8_size(text: str) -> int:
    return len(text.encode("utf-8"))


def app_status_report(
    *, principal: AgentPrincipal, app_slug: str, state: str, message: str, uri: str = ""
) -> AppStatus:
    """Store a status with the token that sent it, so one sent with a stolen token can be traced."""
    with transaction.atomic():
        report_quota_spend(
            agent_id=principal.agent_id,
            kind=AgentReportWindow.KIND_APP_STATUS,
            rows=1,
            size=_utf8_size(message) + _utf8_size(uri),
        )
        return AppStatus.objects.create(
            agent_id=principal.agent_id,
            token_id=principal.token_id,
            app_slug=app_slug,
            state=state,
            message=message,
            uri=uri,
        )


def agent_logs_append(*, principal: AgentPrincipal, logs: list[dict]) -> int:
    """Store a batch of log lines, all or none. An empty line counts as a row: rows cost storage and index
    space whatever their length."""
    line_max_bytes = settings.CODERAUTH_AGENT_LOG_LINE_MAX_BYTES
    size = 0
    for index, line in enumerate(logs):
        line_size = _utf8_size(line["output"])
        if line_size > line_max_bytes:
            raise InvalidInput(
                f"Log line {index} has {line_size} bytes of output; a line may have at most {line_max_bytes} (UTF-8).",
                field="logs",
            )
        size += line_size
    with transaction.atomic():
        report_quota_spend(agent_id=principal.agent_id, kind=AgentReportWindow.KIND_LOGS, rows=len(logs), size=size)
        created = AgentLog.objects.bulk_create(
            AgentLog(
                agent_id=principal.agent_id, created_at=line["created_at"], level=line["level"], output=line["output"]
            )
            for line in logs
        )
    return len(created)
