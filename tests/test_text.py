"""Phone numbers and text shaping: E.164, senders that are not numbers, splitting to a limit."""

from __future__ import annotations

import pytest

from bridge.desk import split_number
from bridge.phone import InvalidNumber, is_dialable, normalize, parse_dialable, pretty
from bridge.render import number_from_title, split_text, thread_title, utf16_len


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+1 555-123-4567", None, "+15551234567"),
        ("+32 470 00 00 01", None, "+32470000001"),
        ("0032470000001", None, "+32470000001"),
        ("32470000001", None, "+32470000001"),  # gateways that drop the "+"
        ("0470 00 00 01", "BE", "+32470000001"),
        ("BANK", None, "BANK"),  # alphanumeric senders keep their name
        ("12345", None, "12345"),  # short codes too
    ],
)
def test_normalize(raw: str, region: str | None, expected: str) -> None:
    assert normalize(raw, region) == expected


def test_only_numbers_are_dialable() -> None:
    assert is_dialable("+15551234567")
    assert not is_dialable("BANK")
    with pytest.raises(InvalidNumber, match="country code"):
        parse_dialable("0470 00 00 01")
    assert parse_dialable("0470 00 00 01", "BE") == "+32470000001"


def test_pretty_and_titles() -> None:
    assert pretty("+15551234567") == "+1 555-123-4567"
    assert thread_title("+15551234567", "Taylor") == "Taylor (+1 555-123-4567)"
    assert thread_title("+15551234567", None) == "+1 555-123-4567"
    assert len(thread_title("+15551234567", "x" * 300)) == 128


def test_split_keeps_every_character_and_respects_the_limit() -> None:
    text = ("word " * 2000).strip()
    parts = split_text(text, 4096)
    assert all(utf16_len(p) <= 4096 for p in parts)
    assert " ".join(parts) == text
    assert len(parts) == 3


def test_split_counts_utf16_and_never_cuts_a_surrogate_pair() -> None:
    text = "😀" * 3000  # 6000 UTF-16 units, no spaces
    parts = split_text(text, 4096)
    assert [utf16_len(p) for p in parts] == [4096, 1904]
    assert "".join(parts) == text


def test_split_prefers_line_breaks() -> None:
    text = "a" * 90 + "\n" + "b" * 20
    assert split_text(text, 100) == ["a" * 90, "b" * 20]


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Taylor (+1 555-123-4567)", "+15551234567"),
        ("📩 Taylor (+1 555-123-4567)\nhello", "+15551234567"),
        ("+1 555-123-4567", "+15551234567"),
        # Not a number one can answer: a short code, a name, our own notices and echoes.
        ("12345", None),
        ("BANK", None),
        ("📤 Alice: see you at 10", None),
        ("💔 SMS not sent: this number opted out", None),
        ("", None),
    ],
)
def test_a_title_names_a_number_only_if_it_can_be_answered(
    title: str, expected: str | None
) -> None:
    assert number_from_title(title) == expected


@pytest.mark.parametrize(
    ("args", "region", "expected"),
    [
        ("+1 555 123 4567 hello", None, ("+1 555 123 4567", "hello")),
        ("+15551234567 3 boxes left", None, ("+15551234567", "3 boxes left")),
        ("+1 555 123 4567 12 noon?", None, ("+1 555 123 4567", "12 noon?")),
        ("0470 12 34 56 7 apples", "BE", ("0470 12 34 56", "7 apples")),
        # No number at all: the number-like words go to the parser, which says why.
        ("12 hello", None, ("12", "hello")),
        ("hello there", None, ("hello", "there")),
    ],
)
def test_sms_command_splits_off_the_longest_number(
    args: str, region: str | None, expected: tuple[str, str]
) -> None:
    assert split_number(args, region) == expected
