"""An existing installation upgrades in place: every row kept, its tokens still authenticate, its audit chain verifies.

The test database is migrated back to an earlier schema and filled through that schema's historical models (never
the current ones: an installation's rows were written by the code of its day), then migrated forward to the leaf
nodes and used through the current code: HTTP requests with the tokens its users hold, and `verify_audit`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from io import StringIO

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.management import call_command
from django.db import connection
from django.db.migrations.state import StateApps
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from agents.models import AgentToken
from agents.selectors.reports import permissions_report_agents
from audit import actions, chain
from audit.models import AuditEvent
from core import crypto, tokens
from tests.helpers.migrations import Migrator, Node
from tests.helpers.responses import assert_status

# The schema of the release before the newest migrations. Whoever adds a migration moves this forward to the
# nodes the previous release shipped, so that the upgrade tested is the one installations make next.
PREVIOUS_SCHEMA: tuple[Node, ...] = (
    ("agents", "0007_sso_identities"),
    ("audit", "0004_audit_stream_cursor"),
    ("policies", "0004_throttle_cache_table"),
)
# An older release, before the owner protection and the rejection rate limit.
OLDER_SCHEMA: tuple[Node, ...] = (
    ("agents", "0002_workspace_owner_protect"),
    ("audit", "0002_append_only_hash_chain"),
    ("policies", "0003_role_groups"),
)
# The first schema, from before the audit log was hash-chained: audit migration 0002 chains the rows it finds.
FIRST_SCHEMA: tuple[Node, ...] = (
    ("agents", "0001_initial"),
    ("audit", "0001_initial"),
    ("policies", "0002_builtin_modes"),
)


@dataclass(frozen=True)
class Schema:
    """An earlier migration state to upgrade from; no nodes is the current state (a check of the test itself)."""

    nodes: tuple[Node, ...] | None
    audit_chained: bool  # whether audit rows carried their hash chain in that schema


@dataclass(frozen=True)
class Installation:
    """What an earlier release left in the database, with the secrets only its users and agents hold."""

    owner_id: int
    owner_username: str
    workspace_id: uuid.UUID
    agent_id: uuid.UUID
    root_token_id: uuid.UUID
    root_token: str
    child_token_id: uuid.UUID
    child_token: str
    user_token: str
    ssh_public_key: str
    ssh_private_key: str
    audit_rows: list[tuple[int, str]]  # (id, hash) in id order


@pytest.fixture
def migrator(transactional_db):
    """Whatever happens in the test, the database ends fully migrated: the tests after it expect the current schema."""
    migrator = Migrator()
    yield migrator
    migrator.migrate_to_leaves()


def _ssh_key_pair(comment: str) -> tuple[str, str]:
    private_key = Ed25519PrivateKey.generate()
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = private_key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return f"{public.decode()} {comment}", private_pem


def _insert_audit_rows(model, events: list[dict], *, chained: bool) -> list[tuple[int, str]]:
    """INSERT only (the table's triggers refuse anything else), ids from the table's sequence as the writer takes them.

    Chained rows link onto whatever the table already holds, so the whole log still verifies from genesis.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT hash FROM audit_auditevent ORDER BY id DESC LIMIT 1")
        last = cursor.fetchone()
    head = last[0] if last else chain.GENESIS_HASH
    inserted = []
    for event in events:
        with connection.cursor() as cursor:
            cursor.execute("SELECT nextval(pg_get_serial_sequence('audit_auditevent', 'id'))")
            (row_id,) = cursor.fetchone()
        row = {"id": row_id, "workspace_id": None, "agent_id": None, "ip": None, "user_agent": "", "request_id": ""}
        row.update(event)
        if chained:
            row["prev_hash"] = head
            row["hash"] = head = chain.row_hash(row)
        else:
            row["prev_hash"] = row["hash"] = ""
        model.objects.create(**row)
        inserted.append((row_id, row["hash"]))
    return inserted


def _populate(apps: StateApps, *, audit_chained: bool) -> Installation:
    """Rows as an earlier release wrote them, through the historical models of its schema.

    Stored names (scopes, the mode, audit actions) are literals: the data predates the current code's constants.
    """
    user_model = apps.get_model(settings.AUTH_USER_MODEL)
    workspace_model = apps.get_model("agents", "Workspace")
    agent_model = apps.get_model("agents", "WorkspaceAgent")
    agent_token_model = apps.get_model("agents", "AgentToken")
    user_token_model = apps.get_model("agents", "UserToken")
    ssh_key_model = apps.get_model("agents", "GitSSHKey")

    issued_at = timezone.now() - timedelta(days=1)
    owner = user_model.objects.create(username="upgrade-owner", password=make_password(None))
    workspace = workspace_model.objects.create(name="payments", owner=owner, permission_mode_id="default")
    agent = agent_model.objects.create(workspace=workspace, name="main")
    root_secret = tokens.generate("agent")
    root = agent_token_model.objects.create(
        agent=agent,
        name="ci",
        digest=root_secret.digest,
        hint=root_secret.hint,
        scopes=["agent:connect", "agent:report", "agent:gitsshkey", "agent:external-auth"],
        created_at=issued_at,
        expires_at=issued_at + timedelta(days=30),
        created_by=owner,
    )
    child_secret = tokens.generate("agent")
    # A schema that records depths had its writer record the child's; an older one left it to the migration.
    recorded_depth = {"depth": 1} if any(field.name == "depth" for field in agent_token_model._meta.fields) else {}
    child = agent_token_model.objects.create(
        agent=agent,
        name="child",
        digest=child_secret.digest,
        hint=child_secret.hint,
        scopes=["agent:connect", "agent:report"],
        created_at=issued_at,
        expires_at=issued_at + timedelta(days=2),
        parent=root,
        **recorded_depth,
    )
    user_secret = tokens.generate("user")
    user_token = user_token_model.objects.create(
        user=owner,
        kind="api",
        name="laptop",
        digest=user_secret.digest,
        hint=user_secret.hint,
        created_at=issued_at,
        expires_at=issued_at + timedelta(days=30),
    )
    public_key, private_key = _ssh_key_pair(comment=f"{owner.username}@coderauth")
    ssh_key_model.objects.create(
        user=owner,
        public_key=public_key,
        private_key_encrypted=crypto.encrypt(private_key, context=f"gitsshkey:{owner.pk}"),
    )

    by_owner = {"actor_type": "user", "actor": owner.username, "ip": "203.0.113.9", "user_agent": "Mozilla/5.0 (café)"}
    in_agent = {"workspace_id": workspace.id, "agent_id": agent.id}
    events = [
        {"action": "user.login", **by_owner, "ip": "2001:db8::7", "details": {"method": "password"}},
        {
            "action": "workspace.created",
            **by_owner,
            "workspace_id": workspace.id,
            "request_id": "req-workspace",
            "details": {"name": workspace.name, "permission_mode": "default"},
        },
        {"action": "agent.created", **by_owner, **in_agent, "details": {"name": agent.name}},
        {
            "action": "agent_token.issued",
            **by_owner,
            **in_agent,
            "details": {
                "token_id": str(root.id),
                "token_hint": root.hint,
                "name": root.name,
                "scopes": list(root.scopes),
                "expires_at": root.expires_at.isoformat(),
                "parent_id": None,
            },
        },
        {
            "action": "agent_token.issued",
            "actor_type": "agent",
            "actor": str(agent.id),
            **in_agent,
            "details": {"token_id": str(child.id), "token_hint": child.hint, "parent_id": str(root.id)},
        },
        {
            "action": "user_token.issued",
            **by_owner,
            "details": {"token_id": str(user_token.id), "token_hint": user_token.hint, "name": user_token.name},
        },
        {"action": "user.gitsshkey_created", **by_owner, "details": {"public_key": public_key}},
        {
            "action": "agent.user_data_accessed",
            "actor_type": "agent",
            "actor": str(agent.id),
            **in_agent,
            "details": {"route": "gitsshkey", "token_id": str(root.id), "mode": "default"},
        },
    ]
    for minutes, event in enumerate(events):
        event["time"] = issued_at + timedelta(minutes=minutes)
    audit_rows = _insert_audit_rows(apps.get_model("audit", "AuditEvent"), events, chained=audit_chained)

    return Installation(
        owner_id=owner.pk,
        owner_username=owner.username,
        workspace_id=workspace.id,
        agent_id=agent.id,
        root_token_id=root.id,
        root_token=root_secret.plaintext,
        child_token_id=child.id,
        child_token=child_secret.plaintext,
        user_token=user_secret.plaintext,
        ssh_public_key=public_key,
        ssh_private_key=private_key,
        audit_rows=audit_rows,
    )


def _bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def _assert_audit_chain_verifies(*, events: int) -> None:
    out = StringIO()
    call_command("verify_audit", stdout=out)
    head = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first()
    assert out.getvalue().strip() == f"audit chain OK: {events} events from genesis, head {head}"


@pytest.mark.parametrize(
    "schema",
    [
        pytest.param(Schema(PREVIOUS_SCHEMA, audit_chained=True), id="previous-schema"),
        pytest.param(Schema(OLDER_SCHEMA, audit_chained=True), id="older-schema"),
        pytest.param(Schema(FIRST_SCHEMA, audit_chained=False), id="first-schema"),
        pytest.param(Schema(None, audit_chained=True), id="current-schema"),
    ],
)
def test_installation_upgrades_in_place(migrator, schema):
    """Migrating forward keeps every row, and the current code accepts the installation's tokens, keys and chain."""
    events_before = AuditEvent.objects.count()
    installation = _populate(
        migrator.migrate(schema.nodes or migrator.leaf_nodes()), audit_chained=schema.audit_chained
    )
    rows_before = migrator.table_row_counts()

    migrator.migrate_to_leaves()

    rows_after = migrator.table_row_counts()
    assert {table: rows_after.get(table) for table in rows_before} == rows_before, "the upgrade lost or added rows"
    assert AgentToken.objects.get(pk=installation.child_token_id).parent_id == installation.root_token_id
    if schema.nodes is not None:
        # Chains minted before depths were recorded get their real depth, so the depth cap counts them too.
        depths = dict(AgentToken.objects.values_list("id", "depth"))
        assert (depths[installation.root_token_id], depths[installation.child_token_id]) == (0, 1)
    populated_ids = [row_id for row_id, _ in installation.audit_rows]
    stored = list(AuditEvent.objects.filter(id__in=populated_ids).order_by("id").values_list("id", "hash"))
    if schema.audit_chained:
        assert stored == installation.audit_rows, "the upgrade changed chained audit rows"
    else:
        assert [row_id for row_id, _ in stored] == populated_ids
    events = events_before + len(populated_ids)
    _assert_audit_chain_verifies(events=events)
    # The report's per-route columns read the installation's rows through the indexes built by the upgrade.
    read_at = AuditEvent.objects.get(id__in=populated_ids, action="agent.user_data_accessed").time
    latest = permissions_report_agents().get(id=installation.agent_id)
    assert (latest["last_user_data_read"], latest["last_git_ssh_key_read"], latest["last_external_auth_read"]) == (
        read_at,
        read_at,
        None,
    )

    root = _bearer(installation.root_token)
    manifest = root.get(reverse("agents:agent-manifest"))
    assert_status(manifest, 200)
    assert manifest.json()["agent_id"] == str(installation.agent_id)
    assert manifest.json()["workspace_id"] == str(installation.workspace_id)
    assert manifest.json()["owner_username"] == installation.owner_username
    assert manifest.json()["scopes"] == ["agent:connect", "agent:report", "agent:gitsshkey", "agent:external-auth"]

    child_manifest = _bearer(installation.child_token).get(reverse("agents:agent-manifest"))
    assert_status(child_manifest, 200)
    assert child_manifest.json()["scopes"] == ["agent:connect", "agent:report"]

    me = _bearer(installation.user_token).get(reverse("agents:user-me"))
    assert_status(me, 200)
    assert me.json() == {"id": installation.owner_id, "username": installation.owner_username, "roles": ["member"]}

    ssh_key = root.get(reverse("agents:agent-gitsshkey"))
    assert_status(ssh_key, 200)
    assert ssh_key.json() == {"public_key": installation.ssh_public_key, "private_key": installation.ssh_private_key}

    # The reads above appended to the chain the installation left: the new rows must link onto its head.
    appended = list(AuditEvent.objects.filter(id__gt=populated_ids[-1]).order_by("id").values_list("action", flat=True))
    assert appended == [actions.AGENT_USER_DATA_ACCESSED]
    _assert_audit_chain_verifies(events=events + len(appended))
