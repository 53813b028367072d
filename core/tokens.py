"""The identifiable token format (docs/concepts.md), its keyed digest, and token lifetimes.

A token is ``<prefix><30 random base62><6 base62 CRC32 of the random part>``. The
checksum lets us reject typos and forged strings before touching the database, and
the prefix tells which authentication flow a token belongs to.

Digests are made under CODERAUTH_TOKEN_DIGEST_KEY. While that key is being rotated, the keys of
CODERAUTH_TOKEN_DIGEST_KEY_PREVIOUS still recognise the tokens stored under them (core/keys.py).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import zlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from django.conf import settings

from core import keys
from core.exceptions import InvalidInput

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ALPHABET_SET = frozenset(ALPHABET)
AGENT_PREFIX = "cda_"
USER_PREFIX = "cdu_"
RANDOM_LENGTH = 30  # 30 * log2(62) ≈ 178.6 bits
CHECKSUM_LENGTH = 6  # 62**6 > 2**32, so any CRC32 fits
TOKEN_LENGTH = len(AGENT_PREFIX) + RANDOM_LENGTH + CHECKSUM_LENGTH

TokenKind = Literal["agent", "user"]
_PREFIX_BY_KIND: dict[str, str] = {"agent": AGENT_PREFIX, "user": USER_PREFIX}


def base62_encode(number: int, width: int) -> str:
    digits = []
    while number:
        number, remainder = divmod(number, 62)
        digits.append(ALPHABET[remainder])
    return "".join(reversed(digits)).rjust(width, "0")


def checksum(random_part: str) -> str:
    return base62_encode(zlib.crc32(random_part.encode("ascii")), CHECKSUM_LENGTH)


@dataclass(frozen=True)
class IssuedSecret:
    """A freshly generated token: the plaintext is shown once, only the digest is kept."""

    plaintext: str
    digest: str
    hint: str


def generate(kind: TokenKind) -> IssuedSecret:
    random_part = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LENGTH))
    plaintext = f"{_PREFIX_BY_KIND[kind]}{random_part}{checksum(random_part)}"
    return IssuedSecret(plaintext=plaintext, digest=digest(plaintext), hint=display_hint(plaintext))


def kind_of(token: str) -> TokenKind | None:
    """The flow a token claims by its prefix, or None when it claims neither."""
    if token.startswith(AGENT_PREFIX):
        return "agent"
    if token.startswith(USER_PREFIX):
        return "user"
    return None


def is_well_formed(token: str, kind: TokenKind) -> bool:
    """Prefix, length, alphabet and checksum: everything that needs no database."""
    prefix = _PREFIX_BY_KIND[kind]
    if len(token) != TOKEN_LENGTH or not token.startswith(prefix):
        return False
    body = token[len(prefix) :]
    if not _ALPHABET_SET.issuperset(body):
        return False
    random_part, given = body[:RANDOM_LENGTH], body[RANDOM_LENGTH:]
    return hmac.compare_digest(checksum(random_part), given)


def digest(token: str) -> str:
    """HMAC-SHA256 under the current server key: fast (tokens are high-entropy) and useless if the table leaks."""
    return _digest_under(settings.CODERAUTH_TOKEN_DIGEST_KEY, token)


def _digest_under(secret: str, token: str) -> str:
    key = secret.encode()
    return hmac.new(key, token.encode("ascii", "replace"), hashlib.sha256).hexdigest()


def digest_key_id() -> str:
    """The id of the current digest key, stored with each token (core/keys.py)."""
    return keys.key_id(settings.CODERAUTH_TOKEN_DIGEST_KEY)


def _previous_digest_keys() -> tuple[str, ...]:
    return keys.previous_keys(settings.CODERAUTH_TOKEN_DIGEST_KEY, settings.CODERAUTH_TOKEN_DIGEST_KEY_PREVIOUS)


def previous_digest_key_ids() -> tuple[str, ...]:
    return tuple(keys.key_id(secret) for secret in _previous_digest_keys())


def previous_digests(token: str) -> list[str]:
    """The token's digests under each previous key: how a token stored before a rotation is still found."""
    return [_digest_under(secret, token) for secret in _previous_digest_keys()]


def display_hint(token: str) -> str:
    """Safe to show and log: the prefix and the last four characters."""
    prefix = token[:4] if kind_of(token) else ""
    return f"{prefix}…{token[-4:]}"


def lifetime(*, seconds: int | None, default: timedelta, maximum: timedelta) -> timedelta:
    """The lifetime asked for (the default when none is), refused above the maximum rather than cut short."""
    chosen = default if seconds is None else timedelta(seconds=seconds)
    if chosen > maximum:
        limit = int(maximum.total_seconds())
        raise InvalidInput(
            f"A token may live at most {limit} seconds ({limit // 86400} days).", field="lifetime_seconds"
        )
    return chosen
