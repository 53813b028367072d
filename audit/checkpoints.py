"""Signed checkpoints: the audit chain's trust anchors, signed with an Ed25519 key kept outside the database.

Whoever can write to the database can delete rows, disable the triggers and recompute every hash, but cannot
sign. So a statement that starts the chain (an archive) or fixes its head (a checkpoint) counts only when it is
signed by a key the verifier trusts:

- ``archive_audit`` signs what it archived and the log's newest row at that moment, and stores the signed
  statement in its ``audit.archived`` row and in the archive file's manifest;
- ``audit_checkpoint`` signs the head of a chain it has just verified, for the auditor to keep;
- ``verify_audit`` starts the chain only from genesis, a signed archive or an archive head the auditor pinned
  from outside the database, and checks that signed heads are still in the chain.

What is signed is :func:`signed_bytes`: the canonical JSON (chain.canonical_json) of the statement, ASCII.
No database here: key files, statements, signatures and the trust rule for one ``audit.archived`` row.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings

from audit import chain

CHECKPOINT_FORMAT = "coderauth-audit-checkpoint/1"
KIND_HEAD = "head"
KIND_ARCHIVE = "archive"
# What an archive statement must vouch for: the facts a verifier recomputes from the archived rows.
ARCHIVE_FACTS = ("count", "first_id", "last_id", "start_hash", "archived_head", "sha256")
SIGNING_KEY_SETTING = "CODERAUTH_AUDIT_SIGNING_KEY_FILE"
PUBLIC_KEYS_SETTING = "CODERAUTH_AUDIT_PUBLIC_KEYS_FILE"

_HASH = re.compile(r"^[0-9a-f]{64}$")
_PEM_PUBLIC_KEY = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.DOTALL)

TrustedKeys = Mapping[str, Ed25519PublicKey]


class KeyUnusable(Exception):
    """A key file is missing, unreadable, encrypted or not Ed25519; the message names the file and why."""


class CheckpointInvalid(Exception):
    """A signed statement does not verify: malformed, of the wrong kind, by an untrusted key or forged."""


class UntrustedArchive(chain.ChainBroken):
    """An audit.archived row that may not start the chain: nothing outside the database vouches for it."""

    def __init__(self, row_id: int, reason: str):
        message = f"audit chain broken: archive at row {row_id} is not signed by a trusted key ({reason})"
        super().__init__(row_id, reason, message=message)


def key_id(public_key: Ed25519PublicKey) -> str:
    """The key's SHA-256 fingerprint as OpenSSH prints it (`ssh-keygen -lf key.pub`): SHA256:<base64>."""
    blob = public_key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).split()[1]
    digest = hashlib.sha256(base64.b64decode(blob)).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


@dataclass(frozen=True)
class SigningKey:
    """The private key that signs archives and checkpoints, and its fingerprint."""

    private_key: Ed25519PrivateKey
    key_id: str

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()


def _read(path: Path | str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise KeyUnusable(f"{path}: {error.strerror or error}") from None


def signing_key_load(path: Path | str) -> SigningKey:
    """An unencrypted Ed25519 private key, PEM (openssl genpkey) or OpenSSH (ssh-keygen) format."""
    data = _read(path)
    private_key = None
    for loader in (serialization.load_pem_private_key, serialization.load_ssh_private_key):
        try:
            private_key = loader(data, password=None)
            break
        except TypeError:
            raise KeyUnusable(f"{path}: the key is protected by a passphrase; the commands need it unencrypted.")
        except (ValueError, UnsupportedAlgorithm):
            continue
    if private_key is None:
        raise KeyUnusable(f"{path}: not a PEM or OpenSSH private key.")
    if not isinstance(private_key, Ed25519PrivateKey):
        raise KeyUnusable(f"{path}: not an Ed25519 key (generate one with ssh-keygen -t ed25519).")
    return SigningKey(private_key=private_key, key_id=key_id(private_key.public_key()))


def public_keys_load(path: Path | str) -> dict[str, Ed25519PublicKey]:
    """Every Ed25519 public key in a file: PEM blocks and OpenSSH lines (`ssh-ed25519 AAAA… comment`, `#` comments)."""
    data = _read(path)
    if b"PRIVATE KEY" in data:
        raise KeyUnusable(f"{path}: holds a private key; give verifiers the public key only.")
    try:
        keys: list[Any] = [serialization.load_pem_public_key(block) for block in _PEM_PUBLIC_KEY.findall(data)]
        for line in _PEM_PUBLIC_KEY.sub(b"", data).decode("ascii").splitlines():
            fields = line.split()
            if fields and not fields[0].startswith("#"):
                keys.append(serialization.load_ssh_public_key(" ".join(fields[:2]).encode("ascii")))
    except (ValueError, UnicodeDecodeError, UnsupportedAlgorithm):
        raise KeyUnusable(f"{path}: not a list of OpenSSH or PEM public keys.") from None
    if not keys:
        raise KeyUnusable(f"{path}: holds no public key.")
    if not all(isinstance(key, Ed25519PublicKey) for key in keys):
        raise KeyUnusable(f"{path}: holds a key that is not Ed25519.")
    return {key_id(key): key for key in keys}


def trusted_keys_load(
    paths: Iterable[Path | str], *, also: Iterable[Ed25519PublicKey] = ()
) -> dict[str, Ed25519PublicKey]:
    """The union of the keys in `paths`, plus `also` (the public half of the signing key, where it is at hand)."""
    trusted: dict[str, Ed25519PublicKey] = {key_id(key): key for key in also}
    for path in paths:
        trusted.update(public_keys_load(path))
    return trusted


# --- What is signed ---------------------------------------------------------------------------------------------


def head_statement(*, head_id: int, head_hash: str, start_hash: str, count: int, time: datetime) -> dict[str, Any]:
    """A verified chain: `count` rows from `start_hash` up to the row `head_id`, whose hash is `head_hash`."""
    return {
        "format": CHECKPOINT_FORMAT,
        "kind": KIND_HEAD,
        "time": chain.canonical_time(time),
        "start_hash": start_hash,
        "count": count,
        "head": {"id": head_id, "hash": head_hash},
    }


def archive_statement(*, archive: Mapping[str, Any], head_id: int, head_hash: str, time: datetime) -> dict[str, Any]:
    """An archive: its summary (the facts of ARCHIVE_FACTS and more), and the log's newest row when it was made.

    The `audit.archived` row is appended right after that newest row, so its prev_hash is `head_hash`: a signed
    statement copied into another row, anywhere else in the chain, no longer matches its place.
    """
    return {
        "format": CHECKPOINT_FORMAT,
        "kind": KIND_ARCHIVE,
        "time": chain.canonical_time(time),
        "head": {"id": head_id, "hash": head_hash},
        "archive": dict(archive),
    }


def signed_bytes(statement: Mapping[str, Any]) -> bytes:
    """The exact bytes a signature covers: the statement's canonical JSON."""
    return chain.canonical_json(statement).encode("ascii")


def checkpoint_sign(statement: Mapping[str, Any], *, key: SigningKey) -> dict[str, Any]:
    """A signed checkpoint: the statement, the signer's fingerprint and the Ed25519 signature (base64)."""
    signature = key.private_key.sign(signed_bytes(statement))
    return {"statement": dict(statement), "key_id": key.key_id, "signature": base64.b64encode(signature).decode()}


def checkpoint_verify(checkpoint: Any, *, trusted: TrustedKeys, kind: str) -> dict[str, Any]:
    """The statement of a signed checkpoint of `kind`, once its signature verifies under a trusted key."""
    if not isinstance(checkpoint, Mapping):
        raise CheckpointInvalid("not a signed checkpoint")
    statement, signer, signature = checkpoint.get("statement"), checkpoint.get("key_id"), checkpoint.get("signature")
    if not isinstance(statement, Mapping) or not isinstance(signer, str) or not isinstance(signature, str):
        raise CheckpointInvalid("not a signed checkpoint (statement, key_id and signature are required)")
    if statement.get("format") != CHECKPOINT_FORMAT or statement.get("kind") != kind:
        raise CheckpointInvalid(f"not a {CHECKPOINT_FORMAT} statement of kind {kind!r}")
    if not trusted:
        raise CheckpointInvalid(
            f"signed by {signer}, but no public key is trusted (pass --public-key or set {PUBLIC_KEYS_SETTING})"
        )
    public_key = trusted.get(signer)
    if public_key is None:
        raise CheckpointInvalid(f"signed by {signer}, which is not a trusted key")
    try:
        public_key.verify(base64.b64decode(signature, validate=True), signed_bytes(statement))
    except (InvalidSignature, binascii.Error, ValueError):
        raise CheckpointInvalid(f"the signature by {signer} does not match the statement") from None
    head = statement.get("head")
    if not (
        isinstance(head, Mapping)
        and isinstance(head.get("id"), int)
        and isinstance(head.get("hash"), str)
        and _HASH.match(head["hash"])
    ):
        raise CheckpointInvalid("the statement names no head row")
    return dict(statement)


def archive_facts_match(statement: Mapping[str, Any], facts: Mapping[str, Any]) -> str | None:
    """Why a verified archive statement does not vouch for `facts` (recomputed or recorded), or None."""
    archive = statement.get("archive")
    if not isinstance(archive, Mapping):
        return "the statement describes no archive"
    for name in ARCHIVE_FACTS:
        if name not in archive or archive[name] != facts.get(name):
            return f"the signed {name} is {archive.get(name)!r}, not {facts.get(name)!r}"
    return None


# --- Where the chain may start ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Anchor:
    """Where the stored chain starts, and what vouches for it."""

    start_hash: str
    archive_row_id: int | None = None
    archived_last_id: int | None = None
    signed_by: str | None = None

    def origin(self) -> str:
        return "genesis" if self.archive_row_id is None else f"the archive at row {self.archive_row_id}"

    def describe(self) -> str:
        if self.archive_row_id is None:
            return "genesis"
        vouched = f"signed by {self.signed_by}" if self.signed_by else "unsigned, head given with --legacy-archive-head"
        return f"archived head {self.start_hash} (archive at row {self.archive_row_id}, {vouched})"


GENESIS = Anchor(start_hash=chain.GENESIS_HASH)


def archive_row_anchor(row: Mapping[str, Any], *, trusted: TrustedKeys, legacy_heads: Iterable[str] = ()) -> Anchor:
    """The start an `audit.archived` row vouches for, or UntrustedArchive.

    Trusted: a valid signature by a trusted key over exactly what the row's details record, made for this place
    in the chain (the statement's head is the row's prev_hash). An archive recorded before archives were signed
    (or signed by a key since withdrawn) counts only when its archived_head is one the auditor pinned from
    outside the database: a forged row can carry any value, but not a head the auditor already holds.
    """
    row_id = int(row["id"])
    details = row["details"] if isinstance(row["details"], Mapping) else {}
    recorded = {name: value for name, value in details.items() if name != "checkpoint"}
    statement, problem = _signed_archive(row, details.get("checkpoint"), recorded, trusted=trusted)
    if statement is not None:
        return Anchor(
            start_hash=statement["archive"]["archived_head"],
            archive_row_id=row_id,
            archived_last_id=statement["archive"]["last_id"],
            signed_by=details["checkpoint"]["key_id"],
        )
    archived_head = recorded.get("archived_head")
    if isinstance(archived_head, str) and archived_head in set(legacy_heads):
        last_id = recorded.get("last_id")
        return Anchor(
            start_hash=archived_head,
            archive_row_id=row_id,
            archived_last_id=last_id if isinstance(last_id, int) else None,
        )
    raise UntrustedArchive(row_id, problem)


def _signed_archive(
    row: Mapping[str, Any], checkpoint: Any, recorded: Mapping[str, Any], *, trusted: TrustedKeys
) -> tuple[dict[str, Any] | None, str]:
    """The archive statement signed for this row and these details, or None and why not."""
    if checkpoint is None:
        return None, "it carries no signature, and its archived_head was not given with --legacy-archive-head"
    try:
        statement = checkpoint_verify(checkpoint, trusted=trusted, kind=KIND_ARCHIVE)
    except CheckpointInvalid as invalid:
        return None, str(invalid)
    mismatch = archive_facts_match(statement, recorded)
    if mismatch:
        return None, mismatch
    if statement["archive"] != recorded:
        return None, "the row's details differ from the signed summary"
    if statement["head"]["hash"] != row["prev_hash"] or statement["head"]["id"] >= int(row["id"]):
        return None, "the signature was made for another place in the chain"
    return statement, ""


# --- Heads the chain must still hold ----------------------------------------------------------------------------


@dataclass
class HeadCheck:
    """A head recorded outside the database: a signed checkpoint's row and hash, or a bare hash (--expect-head)."""

    label: str
    hash: str
    row_id: int | None = None
    signed: str = ""
    found_at: int | None = None
    at_start: bool = False

    def describe(self, where: str) -> str:
        position = "the start" if self.at_start else f"row {self.found_at}"
        signed = f" ({self.signed})" if self.signed else ""
        return f"{self.label} OK: head {self.hash}{signed} is {position} of {where}"


def head_check_from_checkpoint(checkpoint: Any, *, trusted: TrustedKeys, label: str) -> HeadCheck:
    """The head a signed checkpoint (audit_checkpoint's file) vouches for, once its signature verifies."""
    statement = checkpoint_verify(checkpoint, trusted=trusted, kind=KIND_HEAD)
    signed = f"signed {statement.get('time')} by {checkpoint['key_id']}"
    return HeadCheck(label=label, hash=statement["head"]["hash"], row_id=statement["head"]["id"], signed=signed)


def head_check_expected(value: str) -> HeadCheck:
    """A head hash the auditor copied out of an earlier `verify_audit` (64 hex digits)."""
    value = value.strip().lower()
    if not _HASH.match(value):
        raise CheckpointInvalid(f"--expect-head {value!r} is not a hash (64 hexadecimal digits)")
    return HeadCheck(label="--expect-head", hash=value)


class HeadChecks:
    """Heads that must still be in a chain, matched against its rows as they stream past in id order.

    A head is held when a row carries its hash (at its id, for a signed checkpoint), or when the chain starts
    from it. Any later row chains to it, since the walk checks every link, so the head was not cut off.
    """

    def __init__(self, checks: Iterable[HeadCheck]):
        self.checks = list(checks)
        self._by_id: dict[int, list[HeadCheck]] = {}
        self._by_hash: dict[str, list[HeadCheck]] = {}
        for check in self.checks:
            if check.row_id is None:
                self._by_hash.setdefault(check.hash, []).append(check)
            else:
                self._by_id.setdefault(check.row_id, []).append(check)

    def see(self, row_id: int, row_hash: str) -> None:
        for check in self._by_id.get(row_id, ()):
            if check.hash != row_hash:
                raise chain.ChainBroken(
                    row_id, f"{check.label} signed hash {check.hash} for this row: it was rewritten since"
                )
            check.found_at = row_id
        for check in self._by_hash.get(row_hash, ()):
            check.found_at = row_id

    def settle(self, *, start_hash: str, first_id: int | None, last_id: int | None, where: str) -> list[str]:
        """One line per head held; ChainBroken for the first head the chain no longer holds."""
        for check in self.checks:
            if check.found_at is not None:
                continue
            if check.hash == start_hash:
                check.at_start = True
            elif check.row_id is None:
                raise chain.ChainBroken(
                    None,
                    "",
                    message=f"audit chain broken: head {check.hash} ({check.label}) is not in {where}: rows were "
                    "cut from the end or rewritten after it (if it was archived, check it against the archive file)",
                )
            elif last_id is None or check.row_id > last_id:
                ends = f"ends at row {last_id}" if last_id is not None else "holds no row"
                raise chain.ChainBroken(
                    None,
                    "",
                    message=f"audit chain broken: {where} {ends}, but {check.label} signed row {check.row_id}: "
                    "rows were cut from the end",
                )
            elif first_id is not None and check.row_id < first_id:
                raise chain.ChainBroken(
                    None,
                    "",
                    message=f"cannot check {check.label}: its row {check.row_id} comes before {where}, which starts "
                    f"at row {first_id}; check it against the archive file that holds that row "
                    "(verify_audit --archive FILE --checkpoint CHECKPOINT)",
                )
            else:
                raise chain.ChainBroken(
                    check.row_id, f"{check.label} signed this row, and it is missing: rows were removed"
                )
        return [check.describe(where) for check in self.checks]


# --- The keys this installation is configured with --------------------------------------------------------------


def configured_signing_key(*, required: bool) -> SigningKey | None:
    """The key of CODERAUTH_AUDIT_SIGNING_KEY_FILE; KeyUnusable naming the setting when it is needed and absent."""
    path = getattr(settings, SIGNING_KEY_SETTING, "")
    if not path:
        if required:
            raise KeyUnusable(
                f"No audit signing key: set {SIGNING_KEY_SETTING} to the path of an Ed25519 private key kept "
                "outside the database (docs/operations.md, 'The audit signing key')."
            )
        return None
    try:
        return signing_key_load(path)
    except KeyUnusable as error:
        raise KeyUnusable(f"{SIGNING_KEY_SETTING}={error}") from None


def configured_trusted_keys(
    public_key_files: Iterable[str] = (), *, signing_key: SigningKey | None = None
) -> dict[str, Ed25519PublicKey]:
    """The public keys a verifier trusts.

    With --public-key files, exactly their keys: an auditor checks with their own copy and nothing from this
    server's configuration. Otherwise CODERAUTH_AUDIT_PUBLIC_KEYS_FILE's keys (old keys stay listed after a
    rotation) and the public half of the signing key, where one is configured.
    """
    files = list(public_key_files)
    if files:
        return trusted_keys_load(files)
    if signing_key is None:
        signing_key = configured_signing_key(required=False)
    configured = getattr(settings, PUBLIC_KEYS_SETTING, "")
    try:
        return trusted_keys_load(
            [configured] if configured else [], also=[signing_key.public_key] if signing_key else []
        )
    except KeyUnusable as error:
        raise KeyUnusable(f"{PUBLIC_KEYS_SETTING}={error}") from None
