"""Verifying audit files without the database: archive_audit files and JSONL exports, against keys and checkpoints.

An auditor runs this on their own machine with what they keep outside the database: the files, the public key
and their checkpoint files (`verify_audit --archive FILE --public-key KEY --checkpoint CHECKPOINT`).

- An archive file's manifest carries the statement archive_audit signed: checked against the rows themselves.
- A JSONL export (GET /api/v2/audit/export?format=jsonl, without action, actor, workspace or agent filters)
  is a stretch of the chain: each row's hash and link are checked, and a signed checkpoint whose head is in it
  vouches for that row and, through the links, for every row before it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit import chain, checkpoints

EXPORT_FORMAT = "jsonl"


class FileInvalid(Exception):
    """The file does not verify; the message names the file and the first problem."""


@dataclass
class FileReport:
    """A verified file: its kind, rows, head, what vouches for it and the heads it holds."""

    kind: str
    count: int
    first_id: int
    last_id: int
    start_hash: str
    head: str
    signature: str
    heads: list[str]

    def summary(self) -> str:
        events = "1 event" if self.count == 1 else f"{self.count} events"
        return (
            f"audit {self.kind} OK: {events}, head {self.head} (ids {self.first_id}..{self.last_id}, "
            f"start {self.start_hash}); {self.signature}"
        )


def audit_file_verify(
    *,
    path: Path,
    trusted: checkpoints.TrustedKeys,
    legacy_heads: Iterable[str] = (),
    heads: Iterable[checkpoints.HeadCheck] = (),
) -> FileReport:
    """Check every line's hash and link, the trailing manifest, its signature, and the heads that must be in it.

    With trusted keys, an archive's manifest must carry a valid signature, unless the file's head is one of
    `legacy_heads` (an archive made before signing, whose head the auditor recorded). With none, the file is
    checked for consistency only, and the report says it is unsigned or that its signature went unchecked.
    """
    if not path.is_file():
        raise FileInvalid(f"{path}: no such file.")
    body = hashlib.sha256()
    walk: chain.ChainWalk | None = None
    first_id: int | None = None
    manifest: Any = None
    expected = checkpoints.HeadChecks(heads)
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            if manifest is not None:
                raise FileInvalid(f"{path}: line {number} follows the manifest.")
            try:
                record = json.loads(raw)
            except ValueError:
                raise FileInvalid(f"{path}: line {number} is not JSON.") from None
            if isinstance(record, dict) and "manifest" in record:
                manifest = record["manifest"]
                continue
            try:
                if walk is None:
                    walk = chain.ChainWalk(start_hash=record.get("prev_hash", ""))
                walk.check(record)
                expected.see(walk.last_id, walk.head)
            except chain.ChainBroken as broken:
                raise FileInvalid(f"{path}: {broken}") from None
            except (AttributeError, KeyError, TypeError, ValueError) as error:
                raise FileInvalid(f"{path}: line {number} is not an audit row ({error}).") from None
            first_id = walk.last_id if first_id is None else first_id
            body.update(raw)
    if not isinstance(manifest, dict):
        raise FileInvalid(f"{path}: no manifest line; the file is incomplete.")
    if walk is None or first_id is None or walk.last_id is None:
        raise FileInvalid(f"{path}: the file holds no rows.")
    facts = {
        "count": walk.count,
        "first_id": first_id,
        "last_id": walk.last_id,
        "start_hash": walk.start_hash,
        "archived_head": walk.head,
        "sha256": body.hexdigest(),
    }
    if manifest.get("format") == EXPORT_FORMAT:
        kind, signature = "export", _export_checked(path, manifest, facts)
    elif manifest.get("format") == chain.ARCHIVE_FORMAT:
        kind, signature = "archive", _archive_checked(path, manifest, facts, trusted, frozenset(legacy_heads))
    else:
        raise FileInvalid(
            f"{path}: the manifest's format {manifest.get('format')!r} is neither an archive nor a JSONL export."
        )
    try:
        held = expected.settle(start_hash=walk.start_hash, first_id=first_id, last_id=walk.last_id, where=str(path))
    except chain.ChainBroken as broken:
        raise FileInvalid(str(broken)) from None
    if kind == "export":
        signature += (
            ": each head below vouches for its row and every row before it"
            if held
            else ", and nothing vouches for it: add --checkpoint"
        )
    return FileReport(
        kind=kind,
        count=walk.count,
        first_id=first_id,
        last_id=walk.last_id,
        start_hash=walk.start_hash,
        head=walk.head,
        signature=signature,
        heads=held,
    )


def _archive_checked(
    path: Path, manifest: dict, facts: dict, trusted: checkpoints.TrustedKeys, legacy_heads: frozenset[str]
) -> str:
    """The manifest against the rows, then its signature: what a trusted key says these rows are."""
    recorded = {**facts, "head": facts["archived_head"]}
    for name, value in recorded.items():
        if manifest.get(name) != value:
            raise FileInvalid(f"{path}: manifest {name} is {manifest.get(name)!r}, the rows give {value!r}.")
    checkpoint = manifest.get("checkpoint")
    if checkpoint is None:
        if facts["archived_head"] in legacy_heads:
            return "unsigned, head given with --legacy-archive-head"
        if trusted:
            raise FileInvalid(
                f"{path}: the manifest is not signed (an archive made before archives were signed, or a forged one); "
                "if you recorded its head when it was made, give it with --legacy-archive-head."
            )
        return "unsigned, and no public key to require a signature"
    if not trusted:
        return f"signed by {checkpoint.get('key_id')}, signature NOT checked: pass --public-key"
    try:
        statement = checkpoints.checkpoint_verify(checkpoint, trusted=trusted, kind=checkpoints.KIND_ARCHIVE)
    except checkpoints.CheckpointInvalid as invalid:
        raise FileInvalid(f"{path}: the manifest's signature does not hold: {invalid}.") from None
    mismatch = checkpoints.archive_facts_match(statement, facts)
    if mismatch:
        raise FileInvalid(f"{path}: {mismatch}.")
    return f"signed {statement['time']} by {checkpoint['key_id']}"


def _export_checked(path: Path, manifest: dict, facts: dict) -> str:
    """An export's manifest against its rows; only an unfiltered export is a stretch of the chain."""
    if manifest.get("filters"):
        raise FileInvalid(
            f"{path}: a filtered export ({manifest['filters']}) leaves rows out, so its rows do not chain; "
            "export without action, actor, workspace or agent to verify it."
        )
    for name, value in (("rows", facts["count"]), ("sha256", facts["sha256"])):
        if manifest.get(name) != value:
            raise FileInvalid(f"{path}: manifest {name} is {manifest.get(name)!r}, the rows give {value!r}.")
    return "an export carries no signature"
