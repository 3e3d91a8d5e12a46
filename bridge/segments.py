"""What an SMS text costs: GSM-7 (with its extension table) or UCS-2, and how many parts.

A carrier sends a long text as concatenated parts, each giving up room to a header (UDH):
GSM-7 fits 160 septets alone or 153 per part, UCS-2 70 UTF-16 units alone or 67 per part. A
character of the extension table (€ [ ] { } | ^ ~ \\ and form feed) is an escape plus itself,
2 septets, and is never split across parts; nor is a surrogate pair (a character outside the
BMP, most emoji) in UCS-2. One character outside GSM-7 turns the whole text into UCS-2.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Literal

from gsm0338.charset import BASIC_CHARACTER_SET, BASIC_CHARACTER_SET_EXTENSION

Encoding = Literal["GSM-7", "UCS-2"]

# ESC itself is in the basic table only as the switch to the extension table: a literal ESC
# in a text cannot be sent as one septet.
_BASIC = frozenset(unicodedata.lookup(n) for n in BASIC_CHARACTER_SET.values()) - {"\x1b"}
_EXTENSION = frozenset(unicodedata.lookup(n) for n in BASIC_CHARACTER_SET_EXTENSION.values())

# (room of a lone SMS, room of each part of a long one), in septets or UTF-16 units
_ROOM: dict[Encoding, tuple[int, int]] = {"GSM-7": (160, 153), "UCS-2": (70, 67)}


@dataclass(frozen=True, slots=True)
class Segments:
    """How ``text`` goes out: its encoding, its parts, its size in septets or UTF-16 units,
    and for UCS-2 the first character that forced it."""

    encoding: Encoding
    parts: int
    units: int
    forced_by: str | None = None

    def describe(self) -> str:
        """``"UCS-2 because of '😀'"``, or just ``"GSM-7"``."""
        if self.forced_by is None:
            return self.encoding
        return f"{self.encoding} because of {self.forced_by!r}"


def _cost_gsm(char: str) -> int | None:
    if char in _BASIC:
        return 1
    if char in _EXTENSION:
        return 2
    return None


def _cost_ucs2(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def count(text: str) -> Segments:
    """The encoding and number of parts a gateway sends ``text`` in (an empty text: 1)."""
    costs: list[int] = []
    for char in text:
        cost = _cost_gsm(char)
        if cost is None:
            units = [_cost_ucs2(c) for c in text]
            return Segments("UCS-2", _parts(units, "UCS-2"), sum(units), char)
        costs.append(cost)
    return Segments("GSM-7", _parts(costs, "GSM-7"), sum(costs))


def _parts(costs: list[int], encoding: Encoding) -> int:
    """Parts of a text whose characters cost ``costs``; a character is never split."""
    single, each = _ROOM[encoding]
    if sum(costs) <= single:
        return 1
    parts, used = 1, 0
    for cost in costs:
        if used + cost > each:
            parts, used = parts + 1, 0
        used += cost
    return parts


CONFIRM = "!"  # a reply starting with it is sent even over the limit (without the mark)


def gate(text: str, max_segments: int) -> tuple[str, str | None]:
    """(the text to send, why it is refused or None) for a reply limited to ``max_segments``.

    ``!`` at the start confirms a reply over the limit: it goes out without the mark. A short
    reply that happens to start with ``!`` goes out as written.
    """
    if text.startswith(CONFIRM):
        confirmed = text[len(CONFIRM) :].lstrip()
        if confirmed and count(confirmed).parts > max_segments:
            return confirmed, None
    found = count(text)
    if found.parts <= max_segments:
        return text, None
    return text, (
        f"⚠️ Not sent: this reply is {found.parts} SMS parts ({found.describe()}), over the "
        f"limit of {max_segments}. Send it again starting with {CONFIRM} to send anyway."
    )


def sent_notice(found: Segments) -> str:
    """What the thread is told when a multi-part SMS has gone out."""
    return f"📤 sent as {found.parts} SMS parts ({found.encoding})"
