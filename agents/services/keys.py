"""Key rotation (docs/operations.md, "Rotating keys"): users' secrets re-encrypted under the current encryption
key, and the live tokens still stored under a previous digest key counted or revoked. `manage.py rotate_keys`
drives it in batches, each batch one transaction with its audit rows.

A token's digest cannot be recomputed without the token, which only its holder has: a token moves to the
current digest key on its first use after the rotation (agents/services/principals.py), or expires, or is
revoked here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidTag
from django.db import models, transaction
from django.db.models import BinaryField, Count, F, Func, Max, Q, Value
from django.utils import timezone

from agents.models import AgentToken, ExternalAuthLink, GitSSHKey, UserToken, WorkspaceAgent, live_token_q
from agents.services.tokens import agent_token_revoke_by_system
from agents.services.user_data import external_auth_link_context, git_ssh_key_context
from audit import actions
from audit.services import audit_record
from core import crypto, tokens
from core.exceptions import InvalidInput

COMMAND = "rotate_keys"
REVOKE_REASON = "previous_digest_key"
VERSION_1 = "version-1"  # how a value written before ciphertexts named their key is reported

# Every encrypted column, by kind, with the context (associated data) that binds its values to their row.
ENCRYPTED_COLUMNS: dict[str, tuple[type[models.Model], dict[str, Callable[[models.Model], str]]]] = {
    "git_ssh_key": (
        GitSSHKey,
        {"private_key_encrypted": lambda row: git_ssh_key_context(row.user_id)},
    ),
    "external_auth_link": (
        ExternalAuthLink,
        {
            "access_token_encrypted": lambda row: external_auth_link_context(row.user_id, row.provider_id, "token"),
            "token_extra_encrypted": lambda row: external_auth_link_context(row.user_id, row.provider_id, "extra"),
        },
    ),
}
TOKEN_MODELS: dict[str, type[AgentToken] | type[UserToken]] = {"agent_token": AgentToken, "user_token": UserToken}


@dataclass(frozen=True)
class ConfiguredKeys:
    """Ids (core/keys.py) of the key that writes and of the previous keys still read."""

    current: str
    previous: tuple[str, ...]


def digest_keys() -> ConfiguredKeys:
    return ConfiguredKeys(current=tokens.digest_key_id(), previous=tokens.previous_digest_key_ids())


def encryption_keys() -> ConfiguredKeys:
    current, *previous = crypto.key_ids()
    return ConfiguredKeys(current=current, previous=tuple(previous))


# --- Encryption ---------------------------------------------------------------------------------------------


def _head(column: str) -> Func:
    """A ciphertext's first bytes: its version and, from version 2, the id of the key that wrote it."""
    return Func(F(column), Value(1), Value(crypto.HEADER_LENGTH), function="substr", output_field=BinaryField())


def encrypted_values_by_key() -> dict[str, dict[str, int]]:
    """How many stored values each encryption key wrote, per kind: key id (or VERSION_1) -> count.

    Reads only each value's header, in SQL: one grouped query per column."""
    result: dict[str, dict[str, int]] = {}
    for kind, (model, columns) in ENCRYPTED_COLUMNS.items():
        counts: dict[str, int] = {}
        for column in columns:
            grouped = model.objects.annotate(head=_head(column)).values("head").annotate(count=Count("pk")).order_by()
            for row in grouped:
                key_id = crypto.key_id_of(row["head"]) or VERSION_1
                counts[key_id] = counts.get(key_id, 0) + row["count"]
        result[kind] = counts
    return result


@dataclass(frozen=True)
class ReencryptionBatch:
    last_pk: int | None  # the next batch starts after it; None when no row was left
    reencrypted: int  # values rewritten under the current key
    unreadable: tuple[str, ...]  # values no configured key opens, named by row and column (never their content)


def user_data_reencrypt_batch(*, kind: str, after_pk: int, batch_size: int) -> ReencryptionBatch:
    """Rewrite under the current key the values of up to `batch_size` rows of `kind` (after `after_pk`, in pk
    order) that are not under it yet, with one `user_data.reencrypted` audit row in the same transaction.

    The rows are locked, so an owner's concurrent change waits, and PostgreSQL checks the filter again after
    the lock: a value its owner rewrote meanwhile is under the current key already and is left alone. A value
    that no configured key opens stays as it is and is reported."""
    model, columns = ENCRYPTED_COLUMNS[kind]
    header = crypto.current_header()
    heads = {f"head_{index}": _head(column) for index, column in enumerate(columns)}
    not_current = Q()
    for name in heads:
        not_current |= ~Q(**{name: header})
    with transaction.atomic():
        rows = list(
            model.objects.annotate(**heads)
            .filter(not_current, pk__gt=after_pk)
            .order_by("pk")
            .select_for_update()[:batch_size]
        )
        reencrypted = 0
        from_key_ids: set[str] = set()
        user_ids: set[int] = set()
        unreadable: list[str] = []
        for row in rows:
            changes = {}
            for column, context_of in columns.items():
                value = bytes(getattr(row, column))
                if value[: crypto.HEADER_LENGTH] == header:
                    continue
                try:
                    changes[column] = crypto.reencrypt(value, context=context_of(row))
                except (InvalidTag, ValueError):
                    unreadable.append(f"{kind} {row.pk} ({column}) of user {row.user_id}")
                    continue
                from_key_ids.add(crypto.key_id_of(value) or VERSION_1)
            if changes:
                # update(), not save(): updated_at keeps meaning "the owner changed the secret".
                model.objects.filter(pk=row.pk).update(**changes)
                reencrypted += len(changes)
                user_ids.add(row.user_id)
        if reencrypted:
            audit_record(
                action=actions.USER_DATA_REENCRYPTED,
                actor_type="system",
                actor=COMMAND,
                details={
                    "kind": kind,
                    "values": reencrypted,
                    "key_id": encryption_keys().current,
                    "from_key_ids": sorted(from_key_ids),
                    "user_ids": sorted(user_ids),
                    "unreadable": len(unreadable),
                },
            )
    return ReencryptionBatch(
        last_pk=rows[-1].pk if rows else None, reencrypted=reencrypted, unreadable=tuple(unreadable)
    )


# --- Token digests ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveTokensUnderKey:
    kind: str  # "agent_token" or "user_token"
    key_id: str  # empty: stored before key ids were recorded, not used since
    count: int
    last_expires_at: datetime


def live_tokens_by_digest_key(*, now: datetime) -> list[LiveTokensUnderKey]:
    """Live (neither revoked nor expired) tokens per kind and digest key, with the latest expiry of each group."""
    return [
        LiveTokensUnderKey(kind=kind, key_id=row["key_id"], count=row["count"], last_expires_at=row["last"])
        for kind, model in TOKEN_MODELS.items()
        for row in model.objects.filter(live_token_q(now))
        .values("key_id")
        .annotate(count=Count("pk"), last=Max("expires_at"))
        .order_by("key_id")
    ]


def _not_under_current_key() -> Q:
    return ~Q(key_id=tokens.digest_key_id())


def tokens_under_previous_keys_revoke_batch(*, kind: str, now: datetime, batch_size: int) -> int:
    """Revoke up to `batch_size` live tokens of `kind` not stored under the current digest key; how many tokens
    were revoked (an agent token's children included), 0 when none is left. Each gets its usual
    `<kind>.revoked` audit row (actor `system`, reason `previous_digest_key`), in the batch's transaction.

    Refused while no previous digest key is configured: a token stored before key ids were recorded may then
    be under the current key, and revoking it would cut off a working client."""
    if not tokens.previous_digest_key_ids():
        raise InvalidInput("No previous digest key is configured: every token that authenticates is current.")
    model = TOKEN_MODELS[kind]
    with transaction.atomic():
        # Parents before their children (created first), agent by agent: each subtree is revoked and audited once.
        batch = list(
            model.objects.filter(live_token_q(now))
            .filter(_not_under_current_key())
            .order_by(*(("agent_id", "created_at") if model is AgentToken else ("created_at",)))[:batch_size]
        )
        # Every row the batch changes is locked up front, so that no row lock is awaited once the first audit
        # row holds the chain lock (agents/services/locks.py gives the order all writers follow): for agent
        # tokens, the agents' rows in id order, which guard their token trees; for user tokens, the tokens.
        if model is AgentToken:
            agent_ids = sorted({token.agent_id for token in batch})
            list(WorkspaceAgent.objects.select_for_update(no_key=True).filter(pk__in=agent_ids).order_by("pk"))
        else:
            list(UserToken.objects.select_for_update(no_key=True).filter(pk__in=[t.pk for t in batch]).order_by("pk"))
        revoked = 0
        for token in batch:
            if model is AgentToken:
                revoked += len(agent_token_revoke_by_system(token=token, command=COMMAND, reason=REVOKE_REASON))
            else:
                revoked += _user_token_revoke_by_system(token)
    return revoked


def _user_token_revoke_by_system(token: UserToken) -> int:
    updated = UserToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    if updated:
        audit_record(
            action=actions.USER_TOKEN_REVOKED,
            actor_type="system",
            actor=COMMAND,
            details={
                "token_id": str(token.id),
                "token_hint": token.hint,
                "name": token.name,
                "user_id": token.user_id,
                "reason": REVOKE_REASON,
            },
        )
    return updated
