"""The conditions of a route: ``from``/``to`` patterns (numbers, names, globs, regexes),
``text`` patterns, and hours. Pure, like bridge/rules.py that uses them: no store, no I/O.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import phonenumbers
from phonenumbers import PhoneNumberFormat

from bridge.hours import Hours
from bridge.phone import is_dialable, normalize

Kind = Literal["regex", "glob", "number", "name"]
_SEPARATORS = str.maketrans("", "", " -().")
_GLOB = frozenset("*?[")


class PatternError(ValueError):
    """A pattern the config cannot use (an invalid regex, an empty string)."""


@dataclass(frozen=True, slots=True)
class Pattern:
    """One ``from`` or ``to`` pattern: ``re:<regex>``, a glob, a phone number, or a name.

    A regex is searched in the address as the gateway reported it (E.164 for numbers). A
    glob (``*``, ``?``, ``[…]``) must match the whole address, ignoring case, in one of its
    forms: E.164, E.164 without "+", or the national number when it is in ``default_region``.
    A number is compared in E.164; anything else (a short code, a sender name, a device id) is
    compared ignoring case and the separators `` -().``.
    """

    source: str
    kind: Kind
    value: str  # E.164 for a number, the folded name for a name, the pattern otherwise
    regex: re.Pattern[str] | None = None

    @classmethod
    def parse(cls, source: str, region: str | None = None) -> Pattern:
        if source.startswith("re:"):  # as written: a space may belong to the regex
            return cls(source, "regex", source[3:], _compile(source[3:]))
        text = source.strip()
        if not text:
            raise PatternError("empty pattern")
        if _GLOB & set(text):
            compact = text.translate(_SEPARATORS)
            # "+32 470*" is written for people; the addresses it is matched against are compact.
            if compact and set(compact) <= set("+0123456789*?"):
                text = compact
            folded = text.casefold()
            return cls(source, "glob", folded, re.compile(fnmatch.translate(folded), re.DOTALL))
        number = normalize(text, region)
        if is_dialable(number):
            return cls(source, "number", number)
        return cls(source, "name", _fold(text))

    def matches(self, address: Address) -> bool:
        if self.kind == "number":
            return address.number == self.value
        if self.kind == "name":
            return self.value in address.names
        assert self.regex is not None
        if self.kind == "regex":
            return any(self.regex.search(raw) for raw in address.raw)
        return any(self.regex.match(form) for form in address.folded)


@dataclass(frozen=True, slots=True)
class TextPattern:
    """A ``text`` pattern: ``re:<regex>`` searched as written, else a substring, any case."""

    source: str
    needle: str
    regex: re.Pattern[str] | None = None

    @classmethod
    def parse(cls, source: str) -> TextPattern:
        if source.startswith("re:"):
            return cls(source, source[3:], _compile(source[3:]))
        if not source:
            raise PatternError("empty pattern")
        return cls(source, source.casefold())

    def matches(self, text: str, folded: str) -> bool:
        """``folded`` is ``text.casefold()``, computed once for every pattern."""
        if self.regex is not None:
            return self.regex.search(text) is not None
        return self.needle in folded


def _compile(source: str) -> re.Pattern[str]:
    try:
        return re.compile(source)
    except re.error as exc:
        raise PatternError(f"invalid regex: {exc}") from None


def _fold(text: str) -> str:
    return text.casefold().translate(_SEPARATORS)


@dataclass(frozen=True, slots=True)
class Address:
    """The forms of one sender or receiver that patterns look at (see ``Pattern``)."""

    raw: tuple[str, ...]  # as reported
    folded: tuple[str, ...]  # casefolded E.164, E.164 without "+", national; for globs
    names: frozenset[str]  # casefolded without separators; for names and short codes
    number: str | None  # E.164 when it is a phone number


@functools.lru_cache(maxsize=8192)  # a few numbers write again and again; phonenumbers is slow
def address(*raw: str, region: str | None = None) -> Address:
    """The forms of an address reported as ``raw`` (several for a device and its SIM)."""
    folded: list[str] = []
    number = None
    for item in raw:
        folded.append(item.casefold())
        e164 = normalize(item, region) if item.strip() else item
        if not is_dialable(e164):
            continue
        number = number or e164
        folded.extend(f for f in (e164, e164[1:], _national(e164, region)) if f)
    return Address(raw, tuple(dict.fromkeys(folded)), frozenset(map(_fold, raw)), number)


def _national(e164: str, region: str | None) -> str | None:
    if region is None:
        return None
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    if phonenumbers.region_code_for_number(parsed) != region:
        return None
    return phonenumbers.format_number(parsed, PhoneNumberFormat.NATIONAL).translate(_SEPARATORS)


@dataclass(frozen=True, slots=True)
class Match:
    """Conditions that must all hold; an empty one matches everything."""

    senders: tuple[Pattern, ...] = ()  # from
    receivers: tuple[Pattern, ...] = ()  # to
    texts: tuple[TextPattern, ...] = ()
    hours: Hours | None = None

    @property
    def empty(self) -> bool:
        return not (self.senders or self.receivers or self.texts or self.hours)

    def failed(self, sms: Facts, at: datetime) -> str | None:
        """The first condition ``sms`` fails ("from", "to", "text", "hours"), None if none."""
        if self.senders and not any(p.matches(sms.sender) for p in self.senders):
            return "from"
        if self.receivers and not any(p.matches(sms.receiver) for p in self.receivers):
            return "to"
        if self.texts and not any(p.matches(sms.text, sms.folded) for p in self.texts):
            return "text"
        if self.hours is not None and not self.hours.contains(at):
            return "hours"
        return None


@dataclass(frozen=True, slots=True)
class Facts:
    """What rules look at in one SMS, computed once per evaluation."""

    gateway: str
    sender: Address
    receiver: Address
    text: str
    folded: str
