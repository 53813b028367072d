"""The identifiable token format and its keyed digest (docs/concepts.md)."""

from __future__ import annotations

import hashlib
import math
import re
import zlib

import pytest

from core import tokens

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _reference_checksum(random_part: str) -> str:
    """CRC32 of the random part in base62 (alphabet 0-9A-Za-z), left-padded with '0' to six characters."""
    number = zlib.crc32(random_part.encode())
    digits = ""
    while number:
        number, remainder = divmod(number, 62)
        digits = BASE62[remainder] + digits
    return digits.rjust(6, "0")


@pytest.mark.parametrize(("kind", "prefix"), [("agent", "cda_"), ("user", "cdu_")])
def test_generated_token_has_prefix_random_base62_and_checksum(kind, prefix):
    plaintext = tokens.generate(kind).plaintext
    assert plaintext.startswith(prefix)
    body = plaintext[len(prefix) :]
    assert re.fullmatch(r"[0-9A-Za-z]+", body)
    random_part, given = body[:-6], body[-6:]
    assert len(random_part) >= 30
    assert len(random_part) * math.log2(62) >= 178
    assert given == _reference_checksum(random_part)
    assert tokens.is_well_formed(plaintext, kind)


def test_tokens_are_random():
    assert len({tokens.generate("agent").plaintext for _ in range(200)}) == 200


def test_checksum_is_left_padded_with_zeros():
    """A CRC32 small enough to need fewer than six base62 digits keeps a fixed width."""
    for candidate in (f"{n:030d}" for n in range(100_000)):
        if zlib.crc32(candidate.encode()) < 62**5:
            break
    else:
        pytest.skip("no small CRC32 in the sample")
    assert tokens.checksum(candidate).startswith("0")
    assert tokens.checksum(candidate) == _reference_checksum(candidate)
    assert len(tokens.checksum(candidate)) == 6


def test_checksum_of_zero_is_all_zeros():
    assert tokens.base62_encode(0, 6) == "000000"
    assert tokens.base62_encode(61, 6) == "00000z"
    assert tokens.base62_encode(62, 6) == "000010"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t[:-1] + ("0" if t[-1] != "0" else "1"),  # checksum typo
        lambda t: t[:5] + ("0" if t[5] != "0" else "1") + t[6:],  # random-part typo
        lambda t: t[:-1],  # too short
        lambda t: t + "0",  # too long
        lambda t: t.replace("cda_", "cdu_", 1),  # the other kind
        lambda t: t[:10] + "-" + t[11:],  # outside base62
        lambda t: t.upper(),  # case matters in base62
    ],
)
def test_malformed_or_tampered_tokens_are_not_well_formed(mutate):
    plaintext = tokens.generate("agent").plaintext
    mutated = mutate(plaintext)
    assert mutated != plaintext
    assert not tokens.is_well_formed(mutated, "agent")


def test_kind_is_read_from_the_prefix():
    assert tokens.kind_of("cda_x") == "agent"
    assert tokens.kind_of("cdu_x") == "user"
    assert tokens.kind_of("ghp_x") is None


def test_digest_is_keyed_hmac_sha256(settings):
    """A leaked table is useless without the server key: the digest depends on it."""
    plaintext = tokens.generate("agent").plaintext
    first = tokens.digest(plaintext)
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert tokens.digest(plaintext) == first
    assert first != hashlib.sha256(plaintext.encode()).hexdigest()

    settings.CODERAUTH_TOKEN_DIGEST_KEY = "another-server-key"
    assert tokens.digest(plaintext) != first


def test_display_hint_is_prefix_and_last_four():
    issued = tokens.generate("user")
    assert issued.hint == f"cdu_…{issued.plaintext[-4:]}"
    assert issued.digest == tokens.digest(issued.plaintext)
    assert issued.plaintext not in issued.hint
