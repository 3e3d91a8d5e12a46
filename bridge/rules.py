"""Alert routing: which chats, threads and options an inbound SMS gets. Pure: no store, no I/O.

``Routes`` is an ordered list of ``Rule``; the first rule that matches an SMS takes it, unless
it says ``continue_`` (it delivers and evaluation goes on: fan-out). A rule matches when every
condition it gives holds: the sender (``from``), the number, device or SIM that received it
(``to``), the text, and the hours. See bridge/routeconf.py for the YAML that builds these.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from bridge.hours import Hours, wall_clock
from bridge.patterns import Facts, Match, address

__all__ = ["Decision", "Delivery", "Facts", "Match", "Routes", "Rule", "decide"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One route. ``name`` is the config's label, or ``routes[i]`` when it gave none."""

    name: str
    gateway: str | None = None  # None: every gateway
    match: Match = field(default_factory=Match)
    chats: tuple[str, ...] = ()
    thread: str | None = None  # one fixed thread for all it takes; None: a thread per number
    replies: bool = True  # False: a reply in the chat is refused, nothing is sent
    collapse: float | None = None  # seconds within which the same SMS edits the earlier post
    continue_: bool = False
    action: Literal["post", "drop"] = "post"
    default: bool = False  # the gateway `/sms` uses in these chats

    def applies_to(self, gateway: str) -> bool:
        return self.gateway is None or self.gateway == gateway

    @property
    def catch_all(self) -> bool:
        return self.match.empty


@dataclass(frozen=True, slots=True)
class Delivery:
    """One chat that gets the SMS, and how (from the first rule that sent it there)."""

    chat: str
    rule: Rule

    @property
    def thread(self) -> str | None:
        return self.rule.thread

    @property
    def replies(self) -> bool:
        return self.rule.replies

    @property
    def collapse(self) -> float | None:
        return self.rule.collapse


@dataclass(frozen=True, slots=True)
class Decision:
    """Where one SMS goes: the rules that matched, in order, and the chats they chose."""

    matched: tuple[Rule, ...] = ()
    deliveries: tuple[Delivery, ...] = ()
    dropped: bool = False  # a drop rule stopped evaluation (earlier `continue` rules delivered)
    skipped: tuple[tuple[Rule, str], ...] = ()  # rules that did not match and why

    @property
    def chats(self) -> tuple[str, ...]:
        return tuple(d.chat for d in self.deliveries)

    @property
    def unrouted(self) -> bool:
        """No route took the SMS: it is stored and counted, never posted."""
        return not self.deliveries and not self.dropped


@dataclass(frozen=True, slots=True)
class Routes:
    """The ordered rules, with the gateways they may name and the region numbers are read in."""

    rules: tuple[Rule, ...]
    gateways: tuple[str, ...] = ()
    region: str | None = None
    # Caches, filled on first use; the values in them are frozen.
    _by_gateway: dict[str, tuple[Rule, ...]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _constant: dict[str, Decision] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _by_address: dict[tuple[str, str, str | None, int | None], _Candidates] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    # One text gate per set of candidate rules (many senders share one), by the rules' names.
    _gates: dict[tuple[str, ...], _Gate | None] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def evaluate(
        self,
        gateway: str,
        sender: str,
        text: str,
        *,
        at: datetime,
        device: str | None = None,
        sim: int | None = None,
        explain: bool = False,
    ) -> Decision:
        """The decision for an SMS from ``sender`` received by ``gateway`` (on ``device`` and
        ``sim``, as the gateway said) at the instant ``at`` (a naive ``at`` is UTC).

        ``explain`` also lists the rules that did not match and why (``Decision.skipped``), for
        `smsbridge route`; without it, evaluation takes the fast path built for intake.
        """
        rules = self.for_gateway(gateway)
        if explain:
            return decide(rules, self._facts(gateway, sender, text, device, sim), at)
        if gateway in self._constant:
            return self._constant[gateway]
        if all(r.catch_all for r in rules):
            # No condition looks at the SMS (every config written before rules existed): the
            # decision is the same for all of this gateway's SMS; intake pays a lookup.
            self._constant[gateway] = decide(rules, _NO_FACTS, at)
            return self._constant[gateway]
        steps, gate = self._candidates(gateway, sender, device, sim)
        return _decide_fast(steps, gate, text, at)

    def _facts(
        self, gateway: str, sender: str, text: str, device: str | None, sim: int | None
    ) -> Facts:
        receiver = (device or "", *((str(sim), f"sim{sim}") if sim is not None else ()))
        return Facts(
            gateway,
            address(sender, region=self.region),
            address(*receiver, region=self.region),
            text,
            text.casefold(),
        )

    def _candidates(
        self, gateway: str, sender: str, device: str | None, sim: int | None
    ) -> _Candidates:
        """The rules whose ``from`` and ``to`` hold for this sender and receiver, and the gate
        of their text patterns. They depend on nothing else, and the same numbers write again
        and again: cached."""
        key = (gateway, sender, device, sim)
        found = self._by_address.get(key)
        if found is None:
            facts = self._facts(gateway, sender, "", device, sim)
            steps = tuple(
                _Step.of(rule)
                for rule in self.for_gateway(gateway)
                if _addresses_hold(rule.match, facts)
            )
            names = tuple(step.rule.name for step in steps)
            if names not in self._gates:
                texts = sum(1 for step in steps if step.texts)
                self._gates[names] = _Gate.of(steps) if texts > 1 else None
            found = (steps, self._gates[names])
            if len(self._by_address) >= _CACHED_ADDRESSES:
                self._by_address.clear()  # crude, but bounded; refilled by the next SMS
            self._by_address[key] = found
        return found

    def for_gateway(self, gateway: str) -> tuple[Rule, ...]:
        """The rules that may take an SMS of ``gateway``, in order."""
        found = self._by_gateway.get(gateway)
        if found is None:
            found = tuple(r for r in self.rules if r.applies_to(gateway))
            self._by_gateway[gateway] = found
        return found

    def chats_for(self, gateway: str) -> list[str]:
        """Every chat some route may post an SMS of ``gateway`` in, in order."""
        return _unique(c for r in self.for_gateway(gateway) if r.action == "post" for c in r.chats)

    def mirrors_for(self, gateway: str) -> list[str]:
        """The chats that see all of ``gateway``'s SMS (its catch-all routes): they mirror
        what is sent through it, as every routed chat did before rules existed."""
        return _unique(
            c
            for r in self.for_gateway(gateway)
            if r.action == "post" and r.catch_all
            for c in r.chats
        )

    def default_gateway(self, chat: str) -> str | None:
        """The gateway `/sms` uses in ``chat``: its ``default`` route's, else the first route's
        that names a gateway, else (only any-gateway routes) the first gateway."""
        posting = [r for r in self.rules if r.action == "post" and chat in r.chats]
        named = [r for r in posting if r.gateway is not None]
        chosen = next((r for r in named if r.default), named[0] if named else None)
        if chosen is not None:
            return chosen.gateway
        return self.gateways[0] if posting and self.gateways else None

    def has_catch_all(self, gateway: str) -> bool:
        """True if some route takes every SMS of ``gateway`` that earlier ones leave."""
        return any(r.catch_all for r in self.for_gateway(gateway))


def decide(rules: Iterable[Rule], facts: Facts, at: datetime) -> Decision:
    matched: list[Rule] = []
    skipped: list[tuple[Rule, str]] = []
    # One post per chat and thread: two routes may fan an SMS out to two topics of one forum.
    deliveries: dict[tuple[str, str | None], Delivery] = {}
    for rule in rules:
        reason = rule.match.failed(facts, at)
        if reason is not None:
            skipped.append((rule, reason))
            continue
        matched.append(rule)
        if rule.action == "drop":
            return Decision(tuple(matched), tuple(deliveries.values()), True, tuple(skipped))
        for chat in rule.chats:
            # One post per chat: the first rule that sends the SMS there decides how.
            deliveries.setdefault((chat, rule.thread), Delivery(chat, rule))
        if not rule.continue_:
            break
    return Decision(tuple(matched), tuple(deliveries.values()), False, tuple(skipped))


_CACHED_ADDRESSES = 10_000


def _addresses_hold(match: Match, facts: Facts) -> bool:
    return (not match.senders or any(p.matches(facts.sender) for p in match.senders)) and (
        not match.receivers or any(p.matches(facts.receiver) for p in match.receivers)
    )


@dataclass(frozen=True, slots=True)
class _Step:
    """A rule compiled for the fast path (its ``from`` and ``to`` were checked already)."""

    rule: Rule
    texts: bool  # the rule has text patterns
    needles: tuple[str, ...]  # substrings, looked for in the casefolded text
    regexes: tuple[re.Pattern[str], ...]
    hours: Hours | None

    @classmethod
    def of(cls, rule: Rule) -> _Step:
        texts = rule.match.texts
        needles = tuple(p.needle for p in texts if p.regex is None)
        regexes = tuple(p.regex for p in texts if p.regex is not None)
        return cls(rule, bool(texts), needles, regexes, rule.match.hours)

    def text_holds(self, text: str, folded: str) -> bool:
        # Loops, not any(): a generator costs more than `in`, for every SMS at intake.
        for needle in self.needles:
            if needle in folded:
                return True
        for regex in self.regexes:  # noqa: SIM110
            if regex.search(text):
                return True
        return False


@dataclass(frozen=True, slots=True)
class _Gate:
    """One search for all the candidates' text patterns together. Most SMS match none of
    them, and then no rule's patterns need be tried one by one (the slow part of intake with
    many rules). Only group-free regexes are joined: joining renumbers groups, which would
    change what a backreference means."""

    needles: re.Pattern[str] | None
    joined: re.Pattern[str] | None
    alone: tuple[re.Pattern[str], ...]
    textless: tuple[_Step, ...]  # the candidates without text conditions, in order

    @classmethod
    def of(cls, steps: tuple[_Step, ...]) -> _Gate:
        needles = {n for step in steps for n in step.needles}
        regexes = [r for step in steps for r in step.regexes]
        joinable = [r for r in regexes if r.groups == 0]
        alone = [r for r in regexes if r.groups]
        joined = None
        if joinable:
            try:
                joined = re.compile("|".join(_scoped(r) for r in joinable))
            except re.error:  # flags that cannot be scoped: each on its own, as before
                alone.extend(joinable)
        needle = re.compile("|".join(map(re.escape, needles))) if needles else None
        textless = tuple(step for step in steps if not step.texts)
        return cls(needle, joined, tuple(alone), textless)

    def open(self, text: str, folded: str) -> bool:
        """Whether any text pattern may match (False: every one fails)."""
        if self.needles is not None and self.needles.search(folded):
            return True
        if self.joined is not None and self.joined.search(text):
            return True
        for regex in self.alone:  # noqa: SIM110
            if regex.search(text):
                return True
        return False


_GLOBAL_FLAGS = re.compile(r"^\(\?([aiLmsux]+)\)")


def _scoped(regex: re.Pattern[str]) -> str:
    """The pattern as one alternative of a larger one: leading global flags become scoped."""
    found = _GLOBAL_FLAGS.match(regex.pattern)
    if found is None:
        return f"(?:{regex.pattern})"
    return f"(?{found.group(1)}:{regex.pattern[found.end() :]})"


def _decide_fast(steps: tuple[_Step, ...], gate: _Gate | None, text: str, at: datetime) -> Decision:
    """``decide`` for steps whose ``from`` and ``to`` hold (a test checks they agree)."""
    matched: list[Rule] = []
    # One post per chat and thread: two routes may fan an SMS out to two topics of one forum.
    deliveries: dict[tuple[str, str | None], Delivery] = {}
    folded = text.casefold()
    if gate is not None and not gate.open(text, folded):
        steps = gate.textless  # no text condition holds: only the rules without one are left
    local: dict[ZoneInfo, tuple[int, int]] = {}
    for step in steps:
        if step.texts and not step.text_holds(text, folded):
            continue
        if step.hours is not None:
            zone = step.hours.zone
            if zone not in local:
                local[zone] = wall_clock(at, zone)
            if not step.hours.contains_local(*local[zone]):
                continue
        rule = step.rule
        matched.append(rule)
        if rule.action == "drop":
            return Decision(tuple(matched), tuple(deliveries.values()), True)
        for chat in rule.chats:
            deliveries.setdefault((chat, rule.thread), Delivery(chat, rule))
        if not rule.continue_:
            break
    return Decision(tuple(matched), tuple(deliveries.values()), False)


_Candidates = tuple[tuple[_Step, ...], _Gate | None]
_NO_FACTS = Facts("", address(""), address(""), "", "")


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
