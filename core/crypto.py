"""Encryption at rest for user secrets (SSH private keys, external-auth tokens).

AES-256-GCM with a key derived from settings. The associated data binds each
ciphertext to the row and column it belongs to, so a ciphertext copied into another
user's row does not decrypt.
"""

from __future__ import annotations

import hashlib
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

_VERSION = b"\x01"
_NONCE_BYTES = 12


def _cipher() -> AESGCM:
    key = hashlib.sha256(settings.CODERAUTH_ENCRYPTION_KEY.encode()).digest()
    return AESGCM(key)


def encrypt(plaintext: str, *, context: str) -> bytes:
    nonce = os.urandom(_NONCE_BYTES)
    return _VERSION + nonce + _cipher().encrypt(nonce, plaintext.encode(), context.encode())


def decrypt(ciphertext: bytes, *, context: str) -> str:
    ciphertext = bytes(ciphertext)
    if ciphertext[:1] != _VERSION:
        raise ValueError("Unknown ciphertext version.")
    nonce, body = ciphertext[1 : 1 + _NONCE_BYTES], ciphertext[1 + _NONCE_BYTES :]
    return _cipher().decrypt(nonce, body, context.encode()).decode()
