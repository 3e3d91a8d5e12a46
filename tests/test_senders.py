"""The one check of who sent an inbound SMS: numbers, short codes, sender IDs; nothing else."""

from __future__ import annotations

import logging
import math
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.errors import InvalidSender, Unprocessable
from bridge.phone import is_sender, listed_sender, sender

ACCEPTED = [
    ("+46701234567", "+46701234567"),
    ("0046701234567", "+46701234567"),
    ("  +1 555 123 4567 ", "+15551234567"),
    ("46701234567", "+46701234567"),  # iP1 and Smstools drop the "+"
    (46701234567, "+46701234567"),  # a JSON integer: some vendors send numbers as numbers
    ("123", "123"),  # the shortest short code
    ("12345678", "12345678"),  # the longest
    ("123456789", "123456789"),  # a national number as the phone showed it (no country known)
    ("0701234567", "0701234567"),
    ("BANK", "BANK"),
    ("Bank 24", "Bank 24"),
    ("ÄÖÜ-Ñews", "ÄÖÜ-Ñews"),  # GSM 03.38 letters beyond ASCII
    ("MyBankAlert", "MyBankAlert"),  # 11 characters
    ("MyBank[]", "MyBank[]"),  # brackets take two septets each: 10 in all
]

REFUSED = [
    (True, "boolean"),
    (False, "boolean"),
    (1.5, "float"),
    (math.nan, "float"),
    (math.inf, "float"),
    (None, "missing"),
    (-46701234567, "not a phone number"),
    (10**400, "not a phone number"),
    ("", "empty"),
    ("   ", "empty"),
    ([], "list"),
    (["+46701234567"], "list"),
    ({"number": "+46701234567"}, "object"),
    ("\x00123", "control"),
    ("+4670\x001234567", "control"),
    ("BA\nNK", "control"),
    ("9" * 40, "not a phone number"),
    ("+" + "9" * 40, "not a phone number"),
    ("+1234567890123456", "not a phone number"),  # 16 digits: longer than E.164 allows
    ("1234567890123456", "not a phone number"),
    ("12", "not a phone number"),  # shorter than any short code
    ("1", "not a phone number"),
    ("-12345", "not a phone number"),
    ("MyBank-Alerts", "not a phone number"),  # 13 characters: more than a sender ID holds
    ("银行", "not a phone number"),  # not in the GSM alphabet
    ("Bank 🏦", "not a phone number"),
    ("!!!", "not a phone number"),  # no letter: nobody's name
]


@pytest.mark.parametrize(("value", "expected"), ACCEPTED, ids=[repr(a) for a, _ in ACCEPTED])
def test_a_number_short_code_or_sender_id_is_accepted_and_normalized(
    value: object, expected: str
) -> None:
    assert sender(value, "from") == expected
    assert is_sender(expected)


@pytest.mark.parametrize(("value", "why"), REFUSED, ids=[repr(v) for v, _ in REFUSED])
def test_anything_else_is_refused_naming_the_vendor_field(value: object, why: str) -> None:
    with pytest.raises(InvalidSender) as raised:
        sender(value, "data.from")
    assert raised.value.field == "data.from"
    assert "'data.from'" in raised.value.reason
    assert why in raised.value.reason
    # A webhook payload with it is refused as unprocessable (HTTP 422).
    assert isinstance(raised.value, Unprocessable)
    assert raised.value.status == 422


def test_a_sender_id_counts_gsm_septets() -> None:
    assert sender("[Shop]Dea", "from") == "[Shop]Dea"  # 9 characters, 11 septets
    with pytest.raises(InvalidSender):
        sender("[Shop]Deal", "from")  # 10 characters but 12 septets


def test_a_region_reads_national_numbers() -> None:
    assert sender("070-123 45 67", "sender", "SE") == "+46701234567"
    assert sender("070-123 45 67", "sender") == "070-123 45 67"


def test_a_listed_row_with_a_bad_sender_is_skipped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="bridge.phone"):
        assert listed_sender("office", "row-7", True, "number") is None
        assert listed_sender("office", "row-8", "+46701234567", "number") == "+46701234567"
    (record,) = caplog.records
    assert "office" in record.getMessage()
    assert "row-7" in record.getMessage()
    assert "'number'" in record.getMessage()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=5,
)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_any_json_value_gives_a_valid_sender_or_a_refusal(value: object) -> None:
    refused: str | None
    try:
        result = sender(value, "from")
    except InvalidSender as exc:
        refused = exc.field
    else:
        refused = None
    if refused is not None:
        assert refused == "from"
        return
    assert is_sender(result)
    assert isinstance(value, str | int) and not isinstance(value, bool)
    assert result.isprintable() and result == result.strip()
    if result.startswith("+"):
        assert result[1:].isdigit() and len(result) <= 16
    elif result.replace(" ", "").isdigit():
        assert 3 <= len(result.replace(" ", "")) <= 15
    else:
        assert any(c.isalpha() for c in result)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=10**15, max_value=10**60))
def test_a_run_of_more_than_15_digits_is_never_a_sender(number: int) -> None:
    for value in (str(number), f"+{number}", number):
        with pytest.raises(InvalidSender):
            sender(value, "from")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=11))
def test_a_short_ascii_name_with_a_letter_is_a_sender_id(name: str) -> None:
    if not any(c.isalpha() for c in name):
        name = "A" + name[1:]
    assert sender(name, "from") == name
