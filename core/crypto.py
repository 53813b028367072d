"""Encryption at rest for user secrets (SSH private keys, external-auth tokens).

AES-256-GCM under the SHA-256 of CODERAUTH_ENCRYPTION_KEY. The associated data binds each ciphertext to
the row and column it belongs to, so a ciphertext copied into another user's row does not decrypt.

A ciphertext names the key that wrote it, so a rotated key can still be read until `rotate_keys` has
rewritten everything under the new one:

    version 2:  0x02 | key id (4 bytes, core/keys.py) | nonce (12) | ciphertext and tag
                the version and key id are authenticated along with the row's context
    version 1:  0x01 | nonce (12) | ciphertext and tag      (written before keys rotated; names no key)

Version 2 is read with the configured key of that id; version 1 with the current key, then the previous
ones (CODERAUTH_ENCRYPTION_KEY_PREVIOUS).
"""

from __future__ import annotations

import functools
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

from core import keys

_VERSION = b"\x02"
_VERSION_1 = b"\x01"
_NONCE_BYTES = 12
HEADER_LENGTH = len(_VERSION) + keys.KEY_ID_LENGTH // 2


@functools.cache
def _cipher(secret: str) -> AESGCM:
    return AESGCM(hashlib.sha256(secret.encode()).digest())


def _header(secret: str) -> bytes:
    return _VERSION + bytes.fromhex(keys.key_id(secret))


def _configured_keys() -> tuple[str, ...]:
    """The current key first, then the previous ones."""
    current = settings.CODERAUTH_ENCRYPTION_KEY
    return (current, *keys.previous_keys(current, settings.CODERAUTH_ENCRYPTION_KEY_PREVIOUS))


def key_ids() -> tuple[str, ...]:
    """The ids of the configured keys, the current one first."""
    return tuple(keys.key_id(secret) for secret in _configured_keys())


def current_header() -> bytes:
    """How every ciphertext written under the current key begins: what the others are told apart by."""
    return _header(settings.CODERAUTH_ENCRYPTION_KEY)


def key_id_of(ciphertext: bytes) -> str | None:
    """The id of the key a ciphertext names; None for version 1, which names none."""
    ciphertext = bytes(ciphertext)
    if ciphertext[:1] != _VERSION:
        return None
    return ciphertext[1:HEADER_LENGTH].hex()


def encrypt(plaintext: str, *, context: str) -> bytes:
    secret = settings.CODERAUTH_ENCRYPTION_KEY
    header = _header(secret)
    nonce = os.urandom(_NONCE_BYTES)
    return header + nonce + _cipher(secret).encrypt(nonce, plaintext.encode(), header + context.encode())


def decrypt(ciphertext: bytes, *, context: str) -> str:
    """The plaintext, read with whichever configured key wrote it. InvalidTag when none of them did, or when
    the ciphertext belongs to another row (`context`) or was altered."""
    ciphertext = bytes(ciphertext)
    version = ciphertext[:1]
    if version == _VERSION:
        header, rest = ciphertext[:HEADER_LENGTH], ciphertext[HEADER_LENGTH:]
        candidates = [secret for secret in _configured_keys() if _header(secret) == header]
        associated_data = header + context.encode()
    elif version == _VERSION_1:
        rest = ciphertext[1:]
        candidates = list(_configured_keys())
        associated_data = context.encode()
    else:
        raise ValueError("Unknown ciphertext version.")
    nonce, body = rest[:_NONCE_BYTES], rest[_NONCE_BYTES:]
    for secret in candidates:
        try:
            return _cipher(secret).decrypt(nonce, body, associated_data).decode()
        except InvalidTag:
            continue  # another configured key may share the id (4 bytes), or this v1 ciphertext predates it
    raise InvalidTag


def reencrypt(ciphertext: bytes, *, context: str) -> bytes:
    """The same plaintext under the current key. InvalidTag when no configured key opens it."""
    return encrypt(decrypt(ciphertext, context=context), context=context)
