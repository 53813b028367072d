"""Keys that rotate (core/keys.py): key ids, previous digest keys, and ciphertexts that name their key."""

from __future__ import annotations

import hashlib
import os
import re

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core import crypto, keys, tokens

KEY_A = "rotation-test-key-a"
KEY_B = "rotation-test-key-b"


@pytest.fixture
def key_a(settings):
    settings.CODERAUTH_ENCRYPTION_KEY = KEY_A
    settings.CODERAUTH_ENCRYPTION_KEY_PREVIOUS = []
    settings.CODERAUTH_TOKEN_DIGEST_KEY = KEY_A
    settings.CODERAUTH_TOKEN_DIGEST_KEY_PREVIOUS = []
    return settings


def _rotate(settings, *, current: str, previous: list[str]) -> None:
    settings.CODERAUTH_ENCRYPTION_KEY = current
    settings.CODERAUTH_ENCRYPTION_KEY_PREVIOUS = previous
    settings.CODERAUTH_TOKEN_DIGEST_KEY = current
    settings.CODERAUTH_TOKEN_DIGEST_KEY_PREVIOUS = previous


def _version_1_ciphertext(plaintext: str, *, secret: str, context: str) -> bytes:
    """What core.crypto wrote before ciphertexts named their key: 0x01 | nonce | ciphertext, context as AAD."""
    nonce = os.urandom(12)
    cipher = AESGCM(hashlib.sha256(secret.encode()).digest())
    return b"\x01" + nonce + cipher.encrypt(nonce, plaintext.encode(), context.encode())


# --- Key ids ---------------------------------------------------------------------------------------------------


def test_key_id_is_a_short_stable_fingerprint_that_reveals_nothing_of_the_key():
    assert re.fullmatch(r"[0-9a-f]{8}", keys.key_id(KEY_A))
    assert keys.key_id(KEY_A) == keys.key_id(KEY_A)
    assert keys.key_id(KEY_A) != keys.key_id(KEY_B)
    assert keys.key_id(KEY_A) not in hashlib.sha256(KEY_A.encode()).hexdigest()  # not the AES key's prefix


@pytest.mark.parametrize(
    ("previous", "expected"),
    [
        ([], ()),
        ("", ()),
        ("old-1, old-2 ,,old-1", ("old-1", "old-2")),
        (["old-1", "", "current", "old-2"], ("old-1", "old-2")),
    ],
)
def test_previous_keys_drop_blanks_repeats_and_the_current_key(previous, expected):
    assert keys.previous_keys("current", previous) == expected


# --- Token digests ---------------------------------------------------------------------------------------------


def test_a_token_digested_under_a_previous_key_is_found_by_its_previous_digest(key_a):
    plaintext = tokens.generate("agent").plaintext
    under_a = tokens.digest(plaintext)
    _rotate(key_a, current=KEY_B, previous=[KEY_A])
    assert tokens.digest(plaintext) != under_a
    assert tokens.previous_digests(plaintext) == [under_a]
    assert tokens.digest_key_id() == keys.key_id(KEY_B)
    assert tokens.previous_digest_key_ids() == (keys.key_id(KEY_A),)


def test_no_previous_digest_key_means_no_second_lookup(key_a):
    assert tokens.previous_digests(tokens.generate("user").plaintext) == []


# --- Ciphertexts -----------------------------------------------------------------------------------------------


def test_a_ciphertext_names_the_key_that_wrote_it(key_a):
    ciphertext = crypto.encrypt("secret", context="c")
    assert ciphertext[:1] == b"\x02"
    assert crypto.key_id_of(ciphertext) == keys.key_id(KEY_A)
    assert ciphertext.startswith(crypto.current_header())


def test_a_ciphertext_under_a_previous_key_decrypts_while_that_key_is_configured(key_a):
    """The rotation loses nothing: values written under A read under B as long as A is a previous key."""
    ciphertext = crypto.encrypt("ssh private key", context="gitsshkey:1")
    _rotate(key_a, current=KEY_B, previous=[KEY_A])
    assert crypto.decrypt(ciphertext, context="gitsshkey:1") == "ssh private key"
    rewritten = crypto.reencrypt(ciphertext, context="gitsshkey:1")
    assert crypto.key_id_of(rewritten) == keys.key_id(KEY_B)

    _rotate(key_a, current=KEY_B, previous=[])
    assert crypto.decrypt(rewritten, context="gitsshkey:1") == "ssh private key"
    with pytest.raises(InvalidTag):
        crypto.decrypt(ciphertext, context="gitsshkey:1")


def test_version_1_ciphertexts_decrypt_under_the_current_or_a_previous_key(key_a):
    """Rows written before ciphertexts named their key: tried under the current key, then the previous ones."""
    old = _version_1_ciphertext("oauth token", secret=KEY_A, context="external-auth:1:github:token")
    assert crypto.decrypt(old, context="external-auth:1:github:token") == "oauth token"
    _rotate(key_a, current=KEY_B, previous=[KEY_A])
    assert crypto.decrypt(old, context="external-auth:1:github:token") == "oauth token"
    assert crypto.key_id_of(old) is None
    with pytest.raises(InvalidTag):
        crypto.decrypt(old, context="external-auth:2:github:token")  # still bound to its row
    _rotate(key_a, current=KEY_B, previous=[])
    with pytest.raises(InvalidTag):
        crypto.decrypt(old, context="external-auth:1:github:token")


def test_the_header_is_authenticated(key_a):
    """A ciphertext relabelled with another configured key's id, or as version 1, does not decrypt."""
    ciphertext = crypto.encrypt("secret", context="c")
    _rotate(key_a, current=KEY_B, previous=[KEY_A])
    relabelled = b"\x02" + bytes.fromhex(keys.key_id(KEY_B)) + ciphertext[crypto.HEADER_LENGTH :]
    with pytest.raises(InvalidTag):
        crypto.decrypt(relabelled, context="c")
    as_version_1 = b"\x01" + ciphertext[crypto.HEADER_LENGTH :]
    with pytest.raises(InvalidTag):
        crypto.decrypt(as_version_1, context="c")
    with pytest.raises(ValueError, match="version"):
        crypto.decrypt(b"\x03" + ciphertext[1:], context="c")


def test_a_key_removed_too_early_makes_its_values_unreadable_not_wrong(key_a):
    ciphertext = crypto.encrypt("secret", context="c")
    _rotate(key_a, current=KEY_B, previous=[])
    with pytest.raises(InvalidTag):
        crypto.decrypt(ciphertext, context="c")
    with pytest.raises(InvalidTag):
        crypto.reencrypt(ciphertext, context="c")
