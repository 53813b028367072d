"""Seeding a database at scale for benchmarks: users, workspaces, agents, tokens and a valid audit chain.

Rows go in with multi-row INSERTs (bulk_create) and, for the audit log, COPY. The audit rows go in
unsealed, as audit_record writes them, and the sealer (audit/sealing.py) links them into the chain
afterwards, so `verify_audit` passes on the result. Token digests are of random secrets that are
never kept or printed. Everything seeded carries SEED_PREFIX in its username or request id, which is
how a later run tells seed data from real data.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import connection, transaction
from django.utils import timezone

from agents.models import AgentToken, Workspace, WorkspaceAgent
from audit import actions, chain
from audit.models import AuditEvent
from audit.sealing import audit_seal
from core import tokens
from policies.scopes import ordered
from policies.selectors import site_default_mode

SEED_PREFIX = "scale-"
SEED_REQUEST_ID = "seed-scale"
BATCH_SIZE = 5000
# How far back the seeded audit events reach: the `since` filter then has a range to cut.
EVENT_SPAN = timedelta(days=365)
EVENT_ACTIONS = (
    actions.AGENT_USER_DATA_ACCESSED,
    actions.AGENT_ACCESS_DENIED,
    actions.AGENT_TOKEN_ISSUED,
    actions.AGENT_TOKEN_REVOKED,
    actions.WORKSPACE_MODE_CHANGED,
    actions.USER_LOGIN,
)
USER_DATA_ROUTES = ("gitsshkey", "external-auth", "gitauth")
# Every column but the id, which the column default draws; prev_hash and hash stay empty until sealed.
_AUDIT_COLUMNS = [name for name in chain.FIELDS if name != "id"]

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ScaleCounts:
    users: int
    workspaces: int
    agents: int
    tokens: int
    events: int


def scale_foreign_data_exists() -> bool:
    """Anything not written by a seed run: users without the prefix, audit rows without the seed's request id."""
    return (
        get_user_model().objects.exclude(username__startswith=SEED_PREFIX).exists()
        or AuditEvent.objects.exclude(request_id=SEED_REQUEST_ID).exists()
    )


def _batches(total: int, size: int = BATCH_SIZE):
    for start in range(0, total, size):
        yield start, min(size, total - start)


def scale_seed(
    *,
    workspaces: int,
    agents: int,
    agent_tokens: int,
    events: int,
    big_workspace_agents: int = 0,
    progress: Progress | None = None,
) -> ScaleCounts:
    """Seed the given numbers of rows. The first workspace gets `big_workspace_agents` agents, the rest round-robin.

    One user owns each ten workspaces; one admin (`<prefix><run>-admin`, unusable password) comes too.
    """
    report = progress or (lambda _stage, _done, _total: None)
    run = secrets.token_hex(3)
    User = get_user_model()
    mode = site_default_mode()
    password = make_password(None)
    user_count = max(1, -(-workspaces // 10))

    with transaction.atomic():
        User.objects.create(username=f"{SEED_PREFIX}{run}-admin", password=password, is_staff=True, is_superuser=True)
        users = User.objects.bulk_create(
            [User(username=f"{SEED_PREFIX}{run}-{n:06d}", password=password) for n in range(user_count)],
            batch_size=BATCH_SIZE,
        )
    report("users", user_count, user_count)

    workspace_ids = []
    for start, size in _batches(workspaces):
        with transaction.atomic():
            rows = Workspace.objects.bulk_create(
                [
                    Workspace(name=f"ws-{n:06d}", owner=users[n // 10], permission_mode=mode)
                    for n in range(start, start + size)
                ]
            )
        workspace_ids.extend(row.pk for row in rows)
        report("workspaces", start + size, workspaces)

    big = min(big_workspace_agents, agents) if workspace_ids else 0
    agent_ids, agent_workspace_ids = [], []
    for start, size in _batches(agents):
        batch = []
        for n in range(start, start + size):
            # The first `big` agents crowd into one workspace; the rest spread over the others.
            if n < big or len(workspace_ids) == 1:
                workspace_id = workspace_ids[0]
            else:
                workspace_id = workspace_ids[1 + (n - big) % (len(workspace_ids) - 1)]
            batch.append(WorkspaceAgent(workspace_id=workspace_id, name=f"agent-{n:06d}"))
        with transaction.atomic():
            rows = WorkspaceAgent.objects.bulk_create(batch)
        agent_ids.extend(row.pk for row in rows)
        agent_workspace_ids.extend(row.workspace_id for row in rows)
        report("agents", start + size, agents)

    now = timezone.now()
    scopes = ordered(mode.scopes)
    for start, size in _batches(agent_tokens if agent_ids else 0):
        batch = []
        for n in range(start, start + size):
            secret = tokens.generate("agent")
            batch.append(
                AgentToken(
                    agent_id=agent_ids[n % len(agent_ids)],
                    name=f"token-{n:06d}",
                    digest=secret.digest,
                    hint=secret.hint,
                    scopes=scopes,
                    created_at=now,
                    expires_at=now + timedelta(days=30),
                )
            )
        with transaction.atomic():
            AgentToken.objects.bulk_create(batch)
        report("tokens", start + size, agent_tokens)

    scale_seed_events(
        count=events,
        workspace_ids=workspace_ids,
        agent_ids=agent_ids,
        agent_workspace_ids=agent_workspace_ids,
        actor=users[0].username if users else "",
        progress=report,
    )
    # Planner statistics now, as autovacuum would soon: right after a bulk load the planner guesses, and a
    # filtered audit page measured then ran a bitmap scan and a sort of 166,667 rows instead of a short walk.
    with connection.cursor() as cursor:
        for table in (
            "auth_user",
            "agents_workspace",
            "agents_workspaceagent",
            "agents_agenttoken",
            "audit_auditevent",
        ):
            cursor.execute(f"ANALYZE {table}")  # fixed names
    return ScaleCounts(
        users=user_count + 1,
        workspaces=len(workspace_ids),
        agents=len(agent_ids),
        tokens=agent_tokens if agent_ids else 0,
        events=events,
    )


def scale_seed_events(
    *,
    count: int,
    workspace_ids: list,
    agent_ids: list,
    agent_workspace_ids: list,
    actor: str,
    progress: Progress | None = None,
) -> None:
    """Append `count` events, BATCH_SIZE per transaction, times spread evenly; then seal them into the chain."""
    report = progress or (lambda _stage, _done, _total: None)
    start_time = timezone.now() - EVENT_SPAN
    step = EVENT_SPAN / max(count, 1)
    for start, size in _batches(count):
        with transaction.atomic(), connection.cursor() as cursor:
            # Never before the newest row already there (a re-run appends to an existing log).
            base = max(start_time + step * start, _newest_time() or start_time)
            with cursor.cursor.copy(
                f"COPY audit_auditevent ({', '.join(_AUDIT_COLUMNS)}) FROM STDIN"  # noqa: S608 - fixed names
            ) as copy:
                for offset in range(size):
                    n = start + offset
                    row = _event_row(n, base + step * offset, workspace_ids, agent_ids, agent_workspace_ids, actor)
                    copy.write_row([_copy_value(name, row[name]) for name in _AUDIT_COLUMNS])
        report("audit events", start + size, count)
    if count:
        audit_seal(batch_size=BATCH_SIZE, progress=lambda sealed: report("sealed", min(sealed, count), count))


def _newest_time():
    return AuditEvent.objects.order_by("-id").values_list("time", flat=True).first()


def _event_row(n: int, time, workspace_ids: list, agent_ids: list, agent_workspace_ids: list, actor: str) -> dict:
    """A plausible event: agent actions name an agent and its own workspace, logins name neither."""
    action = EVENT_ACTIONS[n % len(EVENT_ACTIONS)]
    agent_id = workspace_id = None
    if agent_ids and action.startswith("agent"):
        agent_id, workspace_id = agent_ids[n % len(agent_ids)], agent_workspace_ids[n % len(agent_ids)]
    elif workspace_ids and action != actions.USER_LOGIN:
        workspace_id = workspace_ids[n % len(workspace_ids)]
    return {
        "time": time,
        "action": action,
        "actor_type": "agent" if agent_id else "user",
        "actor": str(agent_id) if agent_id else actor,
        "workspace_id": str(workspace_id) if workspace_id else None,
        "agent_id": str(agent_id) if agent_id else None,
        "details": _event_details(n, action),
        "ip": None,
        "user_agent": "",
        "request_id": SEED_REQUEST_ID,
        "prev_hash": "",
        "hash": "",
    }


def _event_details(n: int, action: str) -> dict:
    """User-data reads name their route as real ones do, in turn, so the report's per-route columns have work."""
    if action == actions.AGENT_USER_DATA_ACCESSED:
        return {"seed": n, "route": USER_DATA_ROUTES[(n // len(EVENT_ACTIONS)) % len(USER_DATA_ROUTES)]}
    return {"seed": n}


def _copy_value(name: str, value):
    if name == "details":
        return chain.canonical_json(value)
    return value
