"""Command-line options the audit commands share: which public keys to trust, pinned archive heads, heads to find."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import CommandError

from audit import checkpoints
from audit.verification import Trust


def add_trust_arguments(parser) -> None:
    parser.add_argument(
        "--public-key",
        action="append",
        default=[],
        metavar="FILE",
        help="trust the Ed25519 public keys in FILE (OpenSSH lines or PEM), and only those; repeatable "
        "(default: CODERAUTH_AUDIT_PUBLIC_KEYS_FILE and the signing key's public half)",
    )
    parser.add_argument(
        "--legacy-archive-head",
        action="append",
        default=[],
        metavar="HASH",
        help="accept an unsigned audit.archived row whose archived_head is HASH (an archive made before archives "
        "were signed; take HASH from its archive file); repeatable",
    )


def command_trust(public_key_files: list[str], legacy_heads: list[str], *, signing_key=None) -> Trust:
    """The trust of a command line: --public-key files (else the configured keys) and pinned legacy heads."""
    try:
        keys = checkpoints.configured_trusted_keys(public_key_files, signing_key=signing_key)
    except checkpoints.KeyUnusable as unusable:
        raise CommandError(str(unusable)) from None
    pinned = set()
    for value in legacy_heads:
        try:
            pinned.add(checkpoints.head_check_expected(value).hash)
        except checkpoints.CheckpointInvalid:
            raise CommandError(f"--legacy-archive-head {value!r} is not a hash (64 hexadecimal digits).") from None
    return Trust(keys=keys, legacy_heads=frozenset(pinned))


def command_head_checks(
    checkpoint_files: list[str], expected: list[str], *, trust: Trust
) -> list[checkpoints.HeadCheck]:
    """The heads that must still be in the chain: signed checkpoint files (checked here) and bare hashes."""
    heads = []
    for name in checkpoint_files:
        label = f"checkpoint {name}"
        try:
            checkpoint = json.loads(Path(name).read_text(encoding="utf-8"))
        except OSError as error:
            raise CommandError(f"{label}: {error.strerror or error}.") from None
        except ValueError:
            raise CommandError(f"{label}: not JSON; give the file audit_checkpoint wrote.") from None
        try:
            heads.append(checkpoints.head_check_from_checkpoint(checkpoint, trusted=trust.keys, label=label))
        except checkpoints.CheckpointInvalid as invalid:
            raise CommandError(f"{label} does not verify: {invalid}.") from None
    for value in expected:
        try:
            heads.append(checkpoints.head_check_expected(value))
        except checkpoints.CheckpointInvalid as invalid:
            raise CommandError(f"{invalid}.") from None
    return heads


def command_signing_key() -> checkpoints.SigningKey:
    """The configured signing key; a CommandError naming CODERAUTH_AUDIT_SIGNING_KEY_FILE when it is absent or bad."""
    try:
        return checkpoints.configured_signing_key(required=True)
    except checkpoints.KeyUnusable as unusable:
        raise CommandError(str(unusable)) from None
