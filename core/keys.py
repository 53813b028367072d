"""Server keys that rotate: the current key writes, the previous keys are still read until they are retired.

Each key is named by its id, a fingerprint that says which key wrote a token digest or a ciphertext and
reveals nothing of the key: the first 8 hex digits of HMAC-SHA256(key, "coderauth:key-id").
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Iterable

KEY_ID_LENGTH = 8  # hex digits: 4 bytes, enough to tell a handful of configured keys apart


@functools.cache
def key_id(secret: str) -> str:
    return hmac.new(secret.encode(), b"coderauth:key-id", hashlib.sha256).hexdigest()[:KEY_ID_LENGTH]


def previous_keys(current: str, previous: str | Iterable[str]) -> tuple[str, ...]:
    """The previous keys of a setting, in order: blanks, repeats and the current key itself left out.

    `previous` is the setting's list, or one comma-separated string (as the environment holds it)."""
    items = previous.split(",") if isinstance(previous, str) else previous
    kept: list[str] = []
    for item in items:
        secret = item.strip()
        if secret and secret != current and secret not in kept:
            kept.append(secret)
    return tuple(kept)
