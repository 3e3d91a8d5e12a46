"""The rules engine (bridge/rules.py, patterns.py, hours.py): pure, so tested without a bridge."""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bridge.hours import Hours
from bridge.patterns import Pattern, PatternError, TextPattern, address
from bridge.rules import Match, Routes, Rule

MONDAY_9 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
PROPERTY = settings(max_examples=200, deadline=None)


def sender_matches(pattern: str, sender: str, region: str | None = None) -> bool:
    return Pattern.parse(pattern, region).matches(address(sender, region=region))


def text_matches(pattern: str, text: str) -> bool:
    return TextPattern.parse(pattern).matches(text, text.casefold())


# --- from / to patterns ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "sender", "expected"),
    [
        ("+15551234567", "+15551234567", True),
        ("+1 (555) 123-4567", "+15551234567", True),  # written for people, compared in E.164
        ("+15551234567", "+15551234568", False),
        ("+1555*", "+15551234567", True),
        ("1555*", "+15551234567", True),  # the E.164 form without "+"
        ("+32 470*", "+32470123456", True),
        ("+1555*", "+15561234567", False),
        ("+1555?234567", "+15551234567", True),
        ("BANK", "bank", True),  # names ignore case
        ("BANK", "BANKING", False),  # ... but are whole
        ("bank*", "BANKING", True),
        ("12345", "12345", True),
        ("12345", "123456", False),
        (r"re:^\d{4,6}$", "12345", True),
        (r"re:^\d{4,6}$", "+15551234567", False),
        ("re:^[A-Za-z]", "BANK", True),
        ("re:^[A-Za-z]", "+15551234567", False),
        ("re:^bank", "BANK", False),  # a regex is case-sensitive unless it says (?i)
    ],
)
def test_sender_patterns(pattern: str, sender: str, expected: bool) -> None:
    assert sender_matches(pattern, sender) is expected


def test_a_national_number_is_read_in_the_default_region() -> None:
    assert Pattern.parse("0470 12 34 56", "BE").kind == "number"
    assert sender_matches("0470 12 34 56", "+32470123456", "BE")
    assert not sender_matches("0470 12 34 56", "+32470123456")  # no region: a name, not equal
    # A glob also sees the national form of a number of the default region.
    assert sender_matches("0470*", "+32470123456", "BE")
    assert not sender_matches("0470*", "+33470123456", "BE")


def test_pattern_kinds() -> None:
    assert [Pattern.parse(p).kind for p in ("re:x", "+1555*", "+15551234567", "BANK")] == [
        "regex",
        "glob",
        "number",
        "name",
    ]


@pytest.mark.parametrize("bad", ["", "  "])
def test_an_empty_pattern_is_refused(bad: str) -> None:
    with pytest.raises(PatternError, match="empty pattern"):
        Pattern.parse(bad)


def test_an_invalid_regex_says_why() -> None:
    with pytest.raises(PatternError, match=r"^invalid regex: missing \), unterminated"):
        Pattern.parse("re:(abc")
    with pytest.raises(PatternError, match=r"^invalid regex: "):
        TextPattern.parse("re:[")


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("critical", "CRITICAL: disk full", True),
        ("Disk Full", "CRITICAL: disk full", True),
        ("warning", "CRITICAL: disk full", False),
        (r"re:(?i)\bcode\b", "Your CODE: 1234", True),
        (r"re:(?i)\bcode\b", "Your barcode", False),
        ("re:^CRITICAL", "CRITICAL: x", True),
        ("re:^critical", "CRITICAL: x", False),
    ],
)
def test_text_patterns(pattern: str, text: str, expected: bool) -> None:
    assert text_matches(pattern, text) is expected


# Addresses the way gateways report them: E.164-ish digits, short codes, sender names.
SENDERS = st.text(string.ascii_letters + string.digits + "+", min_size=1, max_size=15)


@PROPERTY
@given(literal=SENDERS, cut=st.integers(min_value=0, max_value=15))
def test_a_glob_built_from_a_literal_matches_it_in_any_case(literal: str, cut: int) -> None:
    assume(literal.strip("+"))
    assert sender_matches(literal[:cut] + "*", literal)
    assert sender_matches("?" * len(literal), literal)
    assert sender_matches(literal.swapcase()[:cut] + "*", literal)
    assert not sender_matches(literal + "?", literal)  # a glob matches the whole address


@PROPERTY
@given(literal=st.text(min_size=1, max_size=30))
def test_an_escaped_regex_matches_its_literal(literal: str) -> None:
    assume(literal.strip())
    assert sender_matches("re:" + re.escape(literal), literal)
    assert text_matches("re:" + re.escape(literal), f"before {literal} after")
    assert text_matches("re:^" + re.escape(literal) + "$", literal)


@PROPERTY
@given(needle=st.text(min_size=1, max_size=20), before=st.text(), after=st.text())
def test_substring_matching_ignores_case(needle: str, before: str, after: str) -> None:
    assume(not needle.startswith("re:"))
    variant = needle.swapcase()
    assume(variant.casefold() == needle.casefold())  # not so for a few letters (ǅ, ẞ…)
    assert text_matches(needle, before + variant + after)
    assert text_matches(variant, before + needle + after)


@PROPERTY
@given(pattern=st.text(min_size=1, max_size=20), sender=SENDERS)
def test_any_pattern_parses_or_says_why_and_never_breaks_matching(
    pattern: str, sender: str
) -> None:
    try:
        parsed = Pattern.parse(pattern)
    except PatternError as exc:
        reason = str(exc)
    else:
        assert parsed.matches(address(sender)) in (True, False)
        return
    assert reason.startswith(("invalid regex: ", "empty pattern"))


def test_to_matches_the_receiving_number_device_or_sim() -> None:
    routes = Routes(
        (
            Rule("line", match=Match(receivers=(Pattern.parse("+32460260667"),)), chats=("a",)),
            Rule("sim2", match=Match(receivers=(Pattern.parse("sim2"),)), chats=("b",)),
            Rule("phone", match=Match(receivers=(Pattern.parse("pixel-*"),)), chats=("c",)),
        )
    )

    def chats(**receiver: object) -> tuple[str, ...]:
        return routes.evaluate("g", "+15551234567", "x", at=MONDAY_9, **receiver).chats  # type: ignore[arg-type]

    assert chats(device="+32460260667") == ("a",)
    assert chats(device="0032 460 26 06 67") == ("a",)
    assert chats(device="abc", sim=2) == ("b",)
    assert chats(device="Pixel-7") == ("c",)
    assert chats(sim=1) == ()


# --- order, continue, drop ------------------------------------------------------------------


def rule(name: str, *, text: str | None = None, **options: object) -> Rule:
    texts = (TextPattern.parse(text),) if text else ()
    return Rule(name, match=Match(texts=texts), **options)  # type: ignore[arg-type]


def test_the_first_matching_rule_takes_the_sms() -> None:
    routes = Routes(
        (
            rule("disk", text="disk", chats=("alerts",), thread="Disk"),
            rule("critical", text="critical", chats=("oncall",)),
            rule("rest", chats=("support",)),
        )
    )
    decision = routes.evaluate("g", "+15551234567", "CRITICAL: disk full", at=MONDAY_9)
    assert [r.name for r in decision.matched] == ["disk"]
    assert decision.chats == ("alerts",)
    assert decision.deliveries[0].thread == "Disk"
    assert [(r.name, why) for r, why in decision.skipped] == []
    other = routes.evaluate("g", "+15551234567", "critical: cpu", at=MONDAY_9, explain=True)
    assert [r.name for r in other.matched] == ["critical"]
    assert [(r.name, why) for r, why in other.skipped] == [("disk", "text")]


def test_continue_fans_out_and_each_chat_gets_one_post() -> None:
    routes = Routes(
        (
            rule("critical", text="critical", chats=("alerts",), continue_=True, replies=False),
            rule("again", text="critical", chats=("alerts", "oncall"), continue_=True),
            rule("rest", chats=("support",)),
        )
    )
    decision = routes.evaluate("g", "+15551234567", "CRITICAL", at=MONDAY_9)
    assert [r.name for r in decision.matched] == ["critical", "again", "rest"]
    assert decision.chats == ("alerts", "oncall", "support")
    assert decision.deliveries[0].replies is False  # alerts: the first rule decides how


def test_drop_stops_and_no_match_is_unrouted() -> None:
    routes = Routes(
        (
            rule("spam", text="win", action="drop"),
            rule("critical", text="critical", chats=("alerts",)),
        )
    )
    dropped = routes.evaluate("g", "+15551234567", "You WIN! critical", at=MONDAY_9)
    assert dropped.dropped and not dropped.unrouted and dropped.chats == ()
    lost = routes.evaluate("g", "+15551234567", "hello", at=MONDAY_9)
    assert lost.unrouted and not lost.dropped and lost.matched == ()


def test_a_rule_for_one_gateway_ignores_the_others() -> None:
    routes = Routes(
        (Rule("office", gateway="office", chats=("a",)), Rule("any", chats=("b",))),
        gateways=("office", "home"),
    )
    assert routes.evaluate("home", "BANK", "x", at=MONDAY_9).chats == ("b",)
    assert routes.evaluate("office", "BANK", "x", at=MONDAY_9).chats == ("a",)
    assert routes.chats_for("office") == ["a", "b"] and routes.chats_for("home") == ["b"]


def test_quiet_hours_use_the_instant_given() -> None:
    hours = Match(hours=Hours.parse("Mon-Fri 08:00-18:00", "Europe/Brussels"))
    routes = Routes((Rule("day", match=hours, chats=("alerts",)), Rule("night", chats=("b",))))
    assert routes.evaluate("g", "BANK", "x", at=MONDAY_9).chats == ("alerts",)
    evening = MONDAY_9.replace(hour=17)  # 18:00 in Brussels
    assert routes.evaluate("g", "BANK", "x", at=evening).chats == ("b",)


def test_default_gateway_and_mirrors() -> None:
    routes = Routes(
        (
            Rule(
                "codes",
                gateway="home",
                match=Match(texts=(TextPattern.parse("code"),)),
                chats=("alerts",),
            ),
            Rule("a", gateway="office", chats=("support",), continue_=True),
            Rule("b", gateway="home", chats=("support",), default=True, continue_=True),
            Rule("c", chats=("everything",)),
        ),
        gateways=("office", "home"),
    )
    assert routes.default_gateway("support") == "home"
    assert routes.default_gateway("alerts") == "home"
    assert routes.default_gateway("everything") == "office"  # any-gateway: the first gateway
    assert routes.default_gateway("nowhere") is None
    assert routes.mirrors_for("home") == ["support", "everything"]
    assert routes.chats_for("home") == ["alerts", "support", "everything"]
    assert routes.has_catch_all("home")


MIXED = Routes(
    (
        Rule(
            "codes",
            match=Match(
                senders=tuple(Pattern.parse(p) for p in ("BANK", "+1555*", r"re:^\d{4,6}$")),
                texts=(TextPattern.parse("code"), TextPattern.parse(r"re:\bOTP\b")),
            ),
            chats=("codes",),
        ),
        Rule(
            "sim2-night",
            match=Match(
                receivers=(Pattern.parse("sim2"),),
                hours=Hours.parse("22:00-06:00", "Europe/Brussels"),
            ),
            chats=("night", "all"),
            continue_=True,
        ),
        Rule("spam", gateway="a", match=Match(texts=(TextPattern.parse("win"),)), action="drop"),
        Rule(
            "critical",
            match=Match(texts=(TextPattern.parse("critical"),)),
            chats=("alerts",),
            continue_=True,
        ),
        Rule("rest", gateway="a", chats=("all",)),
    ),
    gateways=("a", "b"),
)


@PROPERTY
@given(
    gateway=st.sampled_from(["a", "b"]),
    sender=st.sampled_from(["BANK", "bank", "+15551234567", "+32470123456", "12345", "X"]),
    words=st.lists(st.sampled_from(["code", "OTP", "otp", "WIN", "Critical", "hi", ""])),
    sim=st.sampled_from([None, 1, 2]),
    at=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)
    ),
)
def test_the_fast_path_decides_as_the_explained_one(
    gateway: str, sender: str, words: list[str], sim: int | None, at: datetime
) -> None:
    text = " ".join(words)
    fast = MIXED.evaluate(gateway, sender, text, at=at, sim=sim)
    again = MIXED.evaluate(gateway, sender, text, at=at, sim=sim)  # from the address cache
    slow = MIXED.evaluate(gateway, sender, text, at=at, sim=sim, explain=True)
    assert fast == again
    assert (fast.matched, fast.deliveries, fast.dropped) == (
        slow.matched,
        slow.deliveries,
        slow.dropped,
    )
    reasons = {rule.name: why for rule, why in slow.skipped}
    assert set(reasons.values()) <= {"from", "to", "text", "hours"}
