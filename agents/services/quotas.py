"""Per-agent report quotas: how many log lines and app statuses (and how many bytes of them) one agent may
store a minute, whatever number of tokens and app processes it spreads them over.

Each agent has one `AgentReportWindow` row per kind, counted in fixed one-minute windows on the database's
clock. A report spends its budget with ONE upsert that resets a window past its minute and adds to a current
one, returning the new totals; the row lock the upsert takes serialises concurrent reports of one agent, so
no interleaving lets two of them both see the old total. The caller runs it in the transaction that stores
the report: a refusal raises, the transaction rolls back, and neither the report nor the counter remains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from uuid import UUID

from django.conf import settings
from django.db import connection

from agents.models import AgentReportWindow
from core.exceptions import LimitReached

WINDOW_SECONDS = 60  # the SQL below says it as interval '1 minute'

# A transaction that began before the window turned may upsert after one that began after it: its older
# window then counts in the newer one instead of resetting the newer one's total.
_SPEND_SQL = """
INSERT INTO agents_agentreportwindow AS spent (agent_id, kind, window_start, "rows", "bytes")
VALUES (%s, %s, date_trunc('minute', now()), %s, %s)
ON CONFLICT (agent_id, kind) DO UPDATE SET
    "rows" = CASE WHEN spent.window_start >= EXCLUDED.window_start
                  THEN spent."rows" + EXCLUDED."rows" ELSE EXCLUDED."rows" END,
    "bytes" = CASE WHEN spent.window_start >= EXCLUDED.window_start
                   THEN spent."bytes" + EXCLUDED."bytes" ELSE EXCLUDED."bytes" END,
    window_start = GREATEST(spent.window_start, EXCLUDED.window_start)
RETURNING spent."rows", spent."bytes",
    EXTRACT(EPOCH FROM spent.window_start + interval '1 minute' - now())
"""


@dataclass(frozen=True)
class _Budget:
    rows_setting: str
    bytes_setting: str
    rows_noun: str
    bytes_noun: str
    rows_code: str
    bytes_code: str


BUDGETS = {
    AgentReportWindow.KIND_LOGS: _Budget(
        rows_setting="CODERAUTH_AGENT_LOG_LINES_PER_MINUTE",
        bytes_setting="CODERAUTH_AGENT_LOG_BYTES_PER_MINUTE",
        rows_noun="log lines",
        bytes_noun="bytes of log output",
        rows_code="log_lines_per_minute",
        bytes_code="log_bytes_per_minute",
    ),
    AgentReportWindow.KIND_APP_STATUS: _Budget(
        rows_setting="CODERAUTH_APP_STATUSES_PER_MINUTE",
        bytes_setting="CODERAUTH_APP_STATUS_BYTES_PER_MINUTE",
        rows_noun="app statuses",
        bytes_noun="bytes of app status message and URI",
        rows_code="app_statuses_per_minute",
        bytes_code="app_status_bytes_per_minute",
    ),
}


def report_quota_spend(*, agent_id: UUID, kind: str, rows: int, size: int) -> None:
    """Count `rows` rows of `size` UTF-8 bytes against the agent's current window of `kind`, or raise
    LimitReached (429) when that takes the window past a limit. Call it inside the transaction that stores
    the report, so a refusal stores nothing and leaves the counter where it was."""
    budget = BUDGETS[kind]
    row_limit = getattr(settings, budget.rows_setting)
    byte_limit = getattr(settings, budget.bytes_setting)
    # A batch no window could ever hold: refused without touching the database, and worded so the client
    # splits it rather than retries it.
    for spent, limit, noun, code in (
        (rows, row_limit, budget.rows_noun, budget.rows_code),
        (size, byte_limit, budget.bytes_noun, budget.bytes_code),
    ):
        if spent > limit:
            raise LimitReached(
                f"This report holds {spent} {noun}, more than an agent may send in a whole minute ({limit}); "
                "send it in smaller parts.",
                retry_after=WINDOW_SECONDS,
                extra={"limit": limit, "code": code},
            )
    with connection.cursor() as cursor:
        cursor.execute(_SPEND_SQL, [agent_id, kind, rows, size])
        total_rows, total_bytes, seconds_left = cursor.fetchone()
    for total, limit, noun, code in (
        (total_rows, row_limit, budget.rows_noun, budget.rows_code),
        (total_bytes, byte_limit, budget.bytes_noun, budget.bytes_code),
    ):
        if total > limit:
            retry_after = max(1, math.ceil(seconds_left))
            raise LimitReached(
                f"This agent may send at most {limit} {noun} a minute; this report would make it {total}. "
                f"Retry after {retry_after} seconds.",
                retry_after=retry_after,
                extra={"limit": limit, "code": code},
            )
