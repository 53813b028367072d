"""Properties of the token format (core/tokens.py, docs/concepts.md), checked on generated inputs (hypothesis).

What is proved rather than sampled: the checksum is CRC-32 of the random part, written in six base62 digits.
CRC-32 detects every burst error of at most 32 bits, and a change to one character (or a swap of two adjacent
ones) of an ASCII string alters at most 16 consecutive bits, so the CRC always changes; base62 in six digits is
one-to-one below 62**6 > 2**32, so the checksum string changes with it. Any such typo in the random part is
therefore refused, not just almost always; a typo in the checksum itself is refused because the checksum is a
function of the random part. Two scattered changes can collide (about one in 2**32): not claimed.
"""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import tokens

PROPERTIES = settings(max_examples=500, deadline=None, database=None)
KINDS = st.sampled_from(["agent", "user"])
PREFIX = {"agent": tokens.AGENT_PREFIX, "user": tokens.USER_PREFIX}
OTHER = {"agent": "user", "user": "agent"}
RANDOM_PARTS = st.text(alphabet=tokens.ALPHABET, min_size=tokens.RANDOM_LENGTH, max_size=tokens.RANDOM_LENGTH)
# Any text at all: non-ASCII, controls, NUL and lone surrogates included.
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=60)


def _decode(digits: str) -> int:
    number = 0
    for digit in digits:
        number = number * 62 + tokens.ALPHABET.index(digit)
    return number


def _token(kind: str, random_part: str) -> str:
    return f"{PREFIX[kind]}{random_part}{tokens.checksum(random_part)}"


@pytest.mark.parametrize("kind", ["agent", "user"])
def test_generated_tokens_are_well_formed_of_their_kind_only(kind):
    """generate() draws from the system's CSPRNG, which hypothesis cannot drive: many draws instead."""
    for _ in range(500):
        issued = tokens.generate(kind)
        assert len(issued.plaintext) == tokens.TOKEN_LENGTH
        assert tokens.kind_of(issued.plaintext) == kind
        assert tokens.is_well_formed(issued.plaintext, kind)
        assert not tokens.is_well_formed(issued.plaintext, OTHER[kind])
        assert issued.digest == tokens.digest(issued.plaintext)
        assert issued.hint == tokens.display_hint(issued.plaintext)


@PROPERTIES
@given(kind=KINDS, random_part=RANDOM_PARTS)
def test_any_random_part_with_its_checksum_round_trips(kind, random_part):
    token = _token(kind, random_part)
    assert tokens.is_well_formed(token, kind)
    assert tokens.kind_of(token) == kind
    body = token[len(PREFIX[kind]) :]
    assert body[: tokens.RANDOM_LENGTH] == random_part
    assert _decode(body[tokens.RANDOM_LENGTH :]) == zlib.crc32(random_part.encode())


@PROPERTIES
@given(kind=KINDS, random_part=RANDOM_PARTS, data=st.data())
def test_any_one_character_typo_in_the_random_part_is_refused(kind, random_part, data):
    """Not "almost always": CRC-32 catches every change confined to 32 consecutive bits."""
    token = _token(kind, random_part)
    position = data.draw(st.integers(len(PREFIX[kind]), len(PREFIX[kind]) + tokens.RANDOM_LENGTH - 1))
    replacement = data.draw(st.sampled_from(tokens.ALPHABET).filter(lambda c: c != token[position]))
    typo = token[:position] + replacement + token[position + 1 :]
    assert not tokens.is_well_formed(typo, kind)


@pytest.mark.parametrize("kind", ["agent", "user"])
def test_every_one_character_typo_and_adjacent_swap_of_real_tokens_is_refused(kind):
    """The claim above, exhaustively for a few generated tokens: all 30 x 61 typos and 29 swaps of each."""
    start = len(PREFIX[kind])
    for _ in range(10):
        token = tokens.generate(kind).plaintext
        for position in range(start, start + tokens.RANDOM_LENGTH):
            for replacement in tokens.ALPHABET:
                if replacement != token[position]:
                    assert not tokens.is_well_formed(token[:position] + replacement + token[position + 1 :], kind)
            if position + 1 < start + tokens.RANDOM_LENGTH and token[position] != token[position + 1]:
                swapped = token[:position] + token[position + 1] + token[position] + token[position + 2 :]
                assert not tokens.is_well_formed(swapped, kind)


@PROPERTIES
@given(kind=KINDS, random_part=RANDOM_PARTS, data=st.data())
def test_any_swap_of_two_adjacent_characters_in_the_random_part_is_refused(kind, random_part, data):
    start = len(PREFIX[kind])
    position = data.draw(st.integers(start, start + tokens.RANDOM_LENGTH - 2))
    token = _token(kind, random_part)
    swapped = token[:position] + token[position + 1] + token[position] + token[position + 2 :]
    if swapped != token:
        assert not tokens.is_well_formed(swapped, kind)


@PROPERTIES
@given(kind=KINDS, random_part=RANDOM_PARTS, data=st.data())
def test_any_change_to_the_checksum_is_refused(kind, random_part, data):
    token = _token(kind, random_part)
    position = data.draw(st.integers(tokens.TOKEN_LENGTH - tokens.CHECKSUM_LENGTH, tokens.TOKEN_LENGTH - 1))
    replacement = data.draw(st.characters(codec=None).filter(lambda c: c != token[position]))
    changed = token[:position] + replacement + token[position + 1 :]
    assert not tokens.is_well_formed(changed, kind)


@PROPERTIES
@given(kind=KINDS, random_part=RANDOM_PARTS, data=st.data())
def test_any_character_outside_base62_or_any_change_of_length_is_refused(kind, random_part, data):
    token = _token(kind, random_part)
    position = data.draw(st.integers(len(PREFIX[kind]), tokens.TOKEN_LENGTH - 1))
    foreign = data.draw(st.characters(codec=None).filter(lambda c: c not in tokens.ALPHABET))
    assert not tokens.is_well_formed(token[:position] + foreign + token[position + 1 :], kind)
    assert not tokens.is_well_formed(token[:position] + token[position + 1 :], kind)
    assert not tokens.is_well_formed(token[:position] + token[position] + token[position:], kind)


@PROPERTIES
@given(text=ANY_TEXT, kind=KINDS)
def test_arbitrary_text_is_classified_by_prefix_and_never_raises(text, kind):
    assert tokens.kind_of(text) == ("agent" if text.startswith("cda_") else "user" if text.startswith("cdu_") else None)
    well_formed = tokens.is_well_formed(text, kind)
    if well_formed:
        assert text.startswith(PREFIX[kind]) and len(text) == tokens.TOKEN_LENGTH
    assert len(tokens.digest(text)) == 64
    assert len(tokens.display_hint(text)) <= 9


@PROPERTIES
@given(number=st.integers(min_value=0, max_value=62**12), width=st.integers(min_value=1, max_value=12))
def test_base62_encodes_at_the_width_asked_and_decodes_back(number, width):
    encoded = tokens.base62_encode(number, width)
    assert set(encoded) <= set(tokens.ALPHABET)
    assert _decode(encoded) == number
    if number < 62**width:
        assert len(encoded) == width
    else:
        assert len(encoded) > width, "a number too large for the width is written in full, never cut"


@PROPERTIES
@given(first=st.integers(0, 62**6 - 1), second=st.integers(0, 62**6 - 1))
def test_base62_at_a_fixed_width_sorts_like_the_numbers(first, second):
    """The alphabet is in ASCII order, so fixed-width strings compare as their numbers do (one-to-one too)."""
    a, b = tokens.base62_encode(first, 6), tokens.base62_encode(second, 6)
    assert (a < b) == (first < second)
    assert (a == b) == (first == second)


@PROPERTIES
@given(text=st.text(max_size=100))
def test_the_checksum_is_six_base62_digits_of_the_crc32(text):
    ascii_text = text.encode("ascii", "ignore").decode()
    checksum = tokens.checksum(ascii_text)
    assert len(checksum) == tokens.CHECKSUM_LENGTH
    assert _decode(checksum) == zlib.crc32(ascii_text.encode()) < 2**32


@PROPERTIES
@given(kind=KINDS, random_part=RANDOM_PARTS)
def test_the_display_hint_of_a_token_shows_its_prefix_and_no_character_of_the_random_part(kind, random_part):
    token = _token(kind, random_part)
    # The four characters shown are the end of the checksum, which the random part already determines.
    assert tokens.display_hint(token) == f"{PREFIX[kind]}…{tokens.checksum(random_part)[-4:]}"


@PROPERTIES
@given(text=ANY_TEXT)
def test_the_display_hint_of_any_text_reveals_at_most_four_trailing_characters(text):
    hint = tokens.display_hint(text)
    prefix, separator, shown = hint.partition("…")
    assert separator == "…"
    assert prefix in ("", "cda_", "cdu_") and (prefix == "" or text.startswith(prefix))
    assert len(shown) <= 4 and text.endswith(shown)
