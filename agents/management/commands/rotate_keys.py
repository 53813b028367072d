"""After a key rotation: re-encrypt user data under the current key, report (or revoke) the tokens still stored
under a previous digest key, and say when the previous keys can be removed."""

from __future__ import annotations

from collections import defaultdict

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from agents.services.keys import (
    ENCRYPTED_COLUMNS,
    TOKEN_MODELS,
    VERSION_1,
    digest_keys,
    encrypted_values_by_key,
    encryption_keys,
    live_tokens_by_digest_key,
    tokens_under_previous_keys_revoke_batch,
    user_data_reencrypt_batch,
)
from core.exceptions import InvalidInput

LABELS = {
    "git_ssh_key": "git SSH private keys",
    "external_auth_link": "external-auth tokens (access token and extras)",
    "agent_token": "agent tokens",
    "user_token": "user tokens",
}


def _ids(ids: tuple[str, ...]) -> str:
    return ", ".join(ids) if ids else "none"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


class Command(BaseCommand):
    help = (
        "Finish a key rotation (docs/operations.md, 'Rotating keys'): re-encrypt every git SSH private key and "
        "external-auth token under CODERAUTH_ENCRYPTION_KEY in batches (each with a user_data.reencrypted audit "
        "row), report the live tokens still stored under a previous CODERAUTH_TOKEN_DIGEST_KEY (--revoke-tokens "
        "revokes them), and say whether the previous keys can be removed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500, help="rows per transaction (default 500)")
        parser.add_argument("--dry-run", action="store_true", help="report only: re-encrypt and revoke nothing")
        parser.add_argument(
            "--revoke-tokens",
            action="store_true",
            help="revoke the live tokens still under a previous digest key (their holders need new tokens)",
        )

    def handle(self, *args, batch_size: int, dry_run: bool, revoke_tokens: bool, **options):
        if not 1 <= batch_size <= 100_000:
            raise CommandError("--batch-size must be between 1 and 100000.")
        if dry_run and revoke_tokens:
            raise CommandError("--dry-run and --revoke-tokens exclude each other.")
        encryption, digest = encryption_keys(), digest_keys()
        if revoke_tokens and not digest.previous:
            raise CommandError(
                "--revoke-tokens: no previous digest key is configured, so every token that authenticates is "
                "already under the current key."
            )
        self.stdout.write(f"Encryption key: current {encryption.current}; previous: {_ids(encryption.previous)}.")
        self.stdout.write(f"Token digest key: current {digest.current}; previous: {_ids(digest.previous)}.")
        unreadable = [] if dry_run else self._reencrypt(batch_size=batch_size, current=encryption.current)
        self._report_encryption(encryption, unreadable=unreadable, dry_run=dry_run)
        if revoke_tokens:
            self._revoke_tokens(batch_size=batch_size)
        self._report_tokens(digest)

    def _reencrypt(self, *, batch_size: int, current: str) -> list[str]:
        unreadable: list[str] = []
        for kind in ENCRYPTED_COLUMNS:
            after, done = 0, 0
            while (
                batch := user_data_reencrypt_batch(kind=kind, after_pk=after, batch_size=batch_size)
            ).last_pk is not None:
                after, done = batch.last_pk, done + batch.reencrypted
                unreadable += batch.unreadable
                self.stderr.write(
                    f"rotate_keys: {LABELS[kind]}: {_count(done, 'value')} re-encrypted (rows to id {after})"
                )
            self.stdout.write(f"Re-encrypted under {current}: {LABELS[kind]}, {_count(done, 'value')}.")
        for value in unreadable:
            self.stdout.write(self.style.WARNING(f"Unreadable with every configured key, left as is: {value}"))
        return unreadable

    def _report_encryption(self, keys, *, unreadable: list[str], dry_run: bool) -> None:
        self.stdout.write("Encrypted values by key:")
        pending = 0
        for kind, counts in encrypted_values_by_key().items():
            others = {key_id: count for key_id, count in counts.items() if key_id != keys.current}
            pending += sum(others.values())
            parts = [f"{counts.get(keys.current, 0)} under the current key"]
            for key_id, count in sorted(others.items()):
                if key_id == VERSION_1:
                    parts.append(f"{count} written before ciphertexts named their key")
                elif key_id in keys.previous:
                    parts.append(f"{count} under previous key {key_id}")
                else:
                    parts.append(f"{count} under {key_id}, a key no longer configured (unreadable)")
            self.stdout.write(f"  {LABELS[kind]}: {', '.join(parts)}")
        if dry_run:
            if pending:
                self.stdout.write(
                    f"Dry run: {_count(pending, 'value')} to re-encrypt (unless no configured key opens it)."
                )
            return
        still_readable = pending - len(unreadable)
        if still_readable > 0:
            self.stdout.write(
                self.style.WARNING(
                    f"{_count(still_readable, 'value')} written under an older key while this ran: make sure every app "
                    "server uses the new CODERAUTH_ENCRYPTION_KEY, then run rotate_keys again. Keep "
                    "CODERAUTH_ENCRYPTION_KEY_PREVIOUS until it reports none."
                )
            )
        elif keys.previous:
            note = (
                f" (the {_count(len(unreadable), 'unreadable value')} above cannot be read with it either)"
                if unreadable
                else ""
            )
            self.stdout.write(
                self.style.SUCCESS(
                    f"Every readable secret is under the current encryption key {keys.current}: "
                    f"CODERAUTH_ENCRYPTION_KEY_PREVIOUS can be removed{note}."
                )
            )
        else:
            self.stdout.write(self.style.SUCCESS(f"Every readable secret is under the encryption key {keys.current}."))

    def _revoke_tokens(self, *, batch_size: int) -> None:
        now = timezone.now()
        for kind in TOKEN_MODELS:
            revoked = 0
            try:
                while count := tokens_under_previous_keys_revoke_batch(kind=kind, now=now, batch_size=batch_size):
                    revoked += count
                    self.stderr.write(f"rotate_keys: {LABELS[kind]}: {revoked} revoked")
            except InvalidInput as error:
                raise CommandError(str(error))
            self.stdout.write(f"Revoked, not under the current digest key: {LABELS[kind]}, {revoked}.")

    def _report_tokens(self, keys) -> None:
        groups = live_tokens_by_digest_key(now=timezone.now())
        dependent, last_expiry = defaultdict(int), None
        self.stdout.write("Live tokens by digest key:")
        for kind in TOKEN_MODELS:
            parts = []
            for group in (group for group in groups if group.kind == kind):
                if group.key_id == keys.current:
                    parts.append(f"{group.count} under the current key")
                    continue
                if not group.key_id:
                    parts.append(f"{group.count} stored before key ids were recorded and unused since")
                elif group.key_id in keys.previous:
                    parts.append(f"{group.count} under previous key {group.key_id}")
                else:
                    parts.append(f"{group.count} under {group.key_id}, a key no longer configured (they fail)")
                    continue
                if keys.previous:
                    dependent[kind] += group.count
                    last_expiry = max(last_expiry or group.last_expires_at, group.last_expires_at)
            self.stdout.write(f"  {LABELS[kind]}: {', '.join(parts) or 'none'}")
        if not keys.previous:
            self.stdout.write("No previous digest key is configured.")
        elif not dependent:
            self.stdout.write(
                self.style.SUCCESS(
                    "No live token depends on a previous digest key: "
                    "CODERAUTH_TOKEN_DIGEST_KEY_PREVIOUS can be removed."
                )
            )
        else:
            counts = " and ".join(f"{LABELS[kind]}: {count}" for kind, count in dependent.items())
            self.stdout.write(
                self.style.WARNING(
                    f"Live tokens that may still depend on a previous digest key: {counts}. Each moves to the "
                    f"current key on its next use; the last of them expires at {last_expiry:%Y-%m-%d %H:%M} UTC. Keep "
                    "CODERAUTH_TOKEN_DIGEST_KEY_PREVIOUS until then, or run rotate_keys --revoke-tokens to revoke "
                    "them now (their holders then need new tokens)."
                )
            )
