"""Phone numbers: one place that turns what gateways and people write into E.164."""

from __future__ import annotations

import functools
import logging
import math

import phonenumbers
from gsm0338 import Codec
from phonenumbers import NumberParseException, PhoneNumberFormat

from bridge.errors import InvalidSender

E164_DIGITS = 15  # ITU-T E.164: at most 15 digits after the "+"
MIN_DIGITS = 3  # the shortest short codes; 3 to 8 digits are short codes, more are numbers
SENDER_ID_SEPTETS = 11  # an alphanumeric sender ID fills at most 11 GSM 03.38 septets
_GSM = Codec()
_SEPARATORS = str.maketrans("", "", " -().")

log = logging.getLogger(__name__)


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


def sender(value: object, field: str, region: str | None = None) -> str:
    """The sender of an inbound SMS as the vendor gave it under ``field``, normalized.

    One check for every gateway: an E.164 number, a short code, an alphanumeric sender ID, or
    the national number the phone showed. Anything else raises ``InvalidSender`` naming
    ``field``: a 422 in a webhook, a skipped row in a polled listing. A JSON integer is a
    number some vendors send; a boolean or a float never is (``str(True)`` would be "True").
    """
    if value is None:
        raise InvalidSender(field, f"missing field '{field}'")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidSender(
            field, f"field '{field}' must be a phone number or sender ID, not {_kind(value)}"
        )
    if isinstance(value, int) and not 0 <= value < 10**E164_DIGITS:
        raise InvalidSender(field, f"field '{field}' is not a phone number: {value}"[:120])
    raw = str(value).strip()
    if not raw:
        raise InvalidSender(field, f"field '{field}' is empty")
    if not raw.isprintable():
        raise InvalidSender(field, f"field '{field}' holds control characters")
    digits = sum(c.isdigit() for c in raw) - (2 if raw.startswith("00") else 0)
    # Counted before parsing too, which forgives a national prefix ("+7 8…" is read as "+7…").
    address = normalize(raw, region) if digits <= E164_DIGITS else raw
    if not is_sender(address):
        shown = raw if len(raw) <= 40 else raw[:37] + "..."
        raise InvalidSender(
            field, f"field '{field}' is not a phone number, short code or sender ID: {shown!r}"
        )
    return address


def listed_sender(
    gateway: str, row_id: object, value: object, field: str, region: str | None = None
) -> str | None:
    """``sender`` for a row of a polled listing: None, with a warning naming the gateway and
    the field, for a row to skip, so that one bad row does not hold up the rest."""
    try:
        return sender(value, field, region)
    except InvalidSender as exc:
        log.warning("%s: SMS %s skipped: %s", gateway, row_id, exc.reason)
        return None


def is_sender(address: str) -> bool:
    """True for a normalized sender the core may open a thread for (see ``sender``)."""
    if not address or not address.isprintable() or address != address.strip():
        return False
    if address.startswith("+"):
        digits = address[1:]
        if not (digits.isascii() and digits.isdigit() and len(digits) <= E164_DIGITS):
            return False
        return _possible(address)  # "+999…" has the shape but no country
    compact = address.translate(_SEPARATORS)
    if compact.isascii() and compact.isdigit():
        # A short code, or a national number the way the phone showed it (normalize found no
        # country for it); a longer run of digits is no number at all.
        starts_well = address[0].isdigit() or address[0] == "("
        return starts_well and MIN_DIGITS <= len(compact) <= E164_DIGITS
    return any(c.isalpha() for c in address) and _septets(address) <= SENDER_ID_SEPTETS


@functools.lru_cache(maxsize=8192)  # the core asks again about what a connector checked
def _possible(address: str) -> bool:
    return _parse(address, None) is not None


def _septets(text: str) -> float:
    """GSM 03.38 septets of ``text`` (extension characters take two); inf if it has others."""
    try:
        encoded, _ = _GSM.encode(text)
    except UnicodeEncodeError:
        return math.inf
    return len(encoded)


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def parse_dialable(raw: str, region: str | None = None) -> str:
    """E.164 for a number a person typed; raise ``InvalidNumber`` with a reason otherwise."""
    result = normalize(raw, region)
    # normalize keeps what phonenumbers cannot read as written: "+1555" looks like E.164
    # but is no possible number.
    if not is_dialable(result) or _parse(result, None) is None:
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
