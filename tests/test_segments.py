"""Counting SMS parts: GSM-7 and its extension table, UCS-2 and surrogate pairs, the limit."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.segments import count, gate

BASIC = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCXYZÄÖÑÜ§¿axyzäöñüà"
EXTENSION = "€[]{}|^~\\\f"


@pytest.mark.parametrize(
    ("text", "encoding", "parts", "units"),
    [
        ("", "GSM-7", 1, 0),
        ("a" * 160, "GSM-7", 1, 160),
        ("a" * 161, "GSM-7", 2, 161),
        ("a" * 306, "GSM-7", 2, 306),
        ("a" * 307, "GSM-7", 3, 307),
        ("€" * 80, "GSM-7", 1, 160),  # each extension character is 2 septets
        ("{" * 81, "GSM-7", 2, 162),
        ("a" * 152 + "€", "GSM-7", 1, 154),
        # 152 septets, then an escape pair that would straddle the part boundary: it moves
        ("a" * 152 + "€" + "a" * 8, "GSM-7", 2, 162),
        ("é" * 160, "GSM-7", 1, 160),  # é is in the basic table
        ("ç" * 70, "UCS-2", 1, 70),  # ç is not
        ("ç" * 71, "UCS-2", 2, 71),
        ("x" * 134, "GSM-7", 1, 134),
        ("x" * 132 + "😀", "UCS-2", 2, 134),
        ("x" * 133 + "😀", "UCS-2", 3, 135),  # 1 unit left in part 2: the pair moves on
        ("😀" * 35, "UCS-2", 1, 70),  # outside the BMP: 2 UTF-16 units each
        ("😀" * 36, "UCS-2", 2, 72),
        ("x" * 68 + "😀", "UCS-2", 1, 70),
        ("x" * 69 + "😀", "UCS-2", 2, 71),
        ("\x1b", "UCS-2", 1, 1),  # ESC is only the extension table's switch
    ],
)
def test_encoding_parts_and_units(text: str, encoding: str, parts: int, units: int) -> None:
    found = count(text)
    assert (found.encoding, found.parts, found.units) == (encoding, parts, units)


def test_the_first_character_outside_gsm7_is_named() -> None:
    found = count("Thanks! See you at 5 😀 ok ✓")
    assert found.forced_by == "😀"
    assert found.describe() == "UCS-2 because of '😀'"
    assert count("only € and {braces}").forced_by is None
    assert count("plain").describe() == "GSM-7"


@settings(max_examples=200)
@given(st.text(alphabet=st.sampled_from(BASIC + EXTENSION), max_size=700))
def test_gsm7_texts_fit_their_parts(text: str) -> None:
    found = count(text)
    assert found.encoding == "GSM-7" and found.forced_by is None
    assert found.units == len(text) + sum(c in EXTENSION for c in text)
    if found.units <= 160:
        assert found.parts == 1
    else:
        # At least the plain division; at most one more per part for a moved escape pair.
        assert math.ceil(found.units / 153) <= found.parts <= math.ceil(found.units / 152)


@settings(max_examples=200)
@given(st.text(max_size=400), st.text(max_size=400))
def test_ucs2_counts_utf16_units_and_never_fewer_parts_than_needed(head: str, tail: str) -> None:
    text = head + "😀" + tail
    found = count(text)
    assert found.encoding == "UCS-2"
    assert found.units == len(text.encode("utf-16-le")) // 2
    assert found.forced_by is not None and found.forced_by in text
    if found.units <= 70:
        assert found.parts == 1
    else:
        assert math.ceil(found.units / 67) <= found.parts <= math.ceil(found.units / 66)


@settings(max_examples=200)
@given(st.text(max_size=300))
def test_more_text_never_costs_fewer_parts(text: str) -> None:
    assert count(text + "a").parts >= count(text).parts


def test_the_gate_refuses_over_the_limit_and_a_bang_confirms() -> None:
    long = "😀" * 40  # 80 units: 2 parts
    assert gate("short", 1) == ("short", None)
    text, why = gate(long, 1)
    assert text == long
    assert why == (
        "⚠️ Not sent: this reply is 2 SMS parts (UCS-2 because of '😀'), over the limit of 1. "
        "Send it again starting with ! to send anyway."
    )
    assert gate("!" + long, 1) == (long, None)
    assert gate("! " + long, 1) == (long, None)
    # A short text that starts with ! is just a text.
    assert gate("!important", 1) == ("!important", None)
    assert gate("!", 1) == ("!", None)
