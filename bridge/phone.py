"""Phone numbers: one place that turns what gateways and people write into E.164."""

from __future__ import annotations

import functools

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat


class InvalidNumber(ValueError):
    """Text that cannot be dialled."""


def _parse(raw: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        number = phonenumbers.parse(raw, region)
    except NumberParseException:
        return None
    # "Possible" rather than "valid": valid-ness lags behind numbering plans and rejects
    # test ranges such as +1 555, and the gateway is the better judge of deliverability.
    return number if phonenumbers.is_possible_number(number) else None


@functools.lru_cache(maxsize=8192)  # the same few numbers write again and again; parsing is slow
def normalize(raw: str, region: str | None = None) -> str:
    """Return E.164 for anything that parses as a phone number, else the sender as written.

    Gateways report short codes ("12345") and alphanumeric senders ("BANK"); those SMS still
    deserve a thread, so they are kept verbatim rather than rejected.
    """
    text = raw.strip()
    if not text:
        raise InvalidNumber("empty phone number")
    if text.startswith("00") and text[2:].replace(" ", "").isdigit():
        text = "+" + text[2:]
    candidates: list[tuple[str, str | None]] = [(text, None)] if text.startswith("+") else []
    if region and not text.startswith("+"):
        candidates.append((text, region))
    digits = text.replace(" ", "").replace("-", "")
    # Several gateways drop the "+" (iP1, Smstools): long digit strings carry their country code.
    if digits.isdigit() and len(digits) >= 10:
        candidates.append(("+" + digits, None))
    for candidate, cand_region in candidates:
        number = _parse(candidate, cand_region)
        if number is not None:
            return phonenumbers.format_number(number, PhoneNumberFormat.E164)
    return text


def parse_dialable(raw: str, region: str | None = None) -> str:
    """E.164 for a number a person typed; raise ``InvalidNumber`` with a reason otherwise."""
    result = normalize(raw, region)
    if not is_dialable(result):
        hint = "" if region else " (write it with its country code, e.g. +15551234567)"
        raise InvalidNumber(f"{raw.strip()!r} is not a phone number{hint}")
    return result


def is_dialable(address: str) -> bool:
    """True for E.164 numbers; short codes and sender names cannot be answered by SMS."""
    return address.startswith("+") and address[1:].isdigit()


def pretty(address: str) -> str:
    """International format for people ("+1 555-123-4567"); other senders unchanged."""
    if not is_dialable(address):
        return address
    number = _parse(address, None)
    if number is None:
        return address
    return phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
