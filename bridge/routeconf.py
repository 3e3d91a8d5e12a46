"""The config's ``routes:``: their YAML shape, and the pure ``Routes`` (bridge/rules.py) they build.

Every problem names its path (``routes[2].match.text[1]: invalid regex: …``). ``continue``
defaults to false: the first route that matches takes the SMS. A config without ``match``
anywhere (as every config was before rules existed) behaves as it did then: each of its routes
gets every SMS of its gateway.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from bridge.confbase import Strict
from bridge.hours import Hours, HoursError, duration, zone
from bridge.patterns import Pattern, PatternError, TextPattern
from bridge.rules import Match, Routes, Rule


def _strings(value: Any) -> Any:
    """A pattern or a list of them; YAML reads ``from: 12345`` (a short code) as a number."""
    if value is None or value == "":
        return None
    if isinstance(value, list):
        return [_string(v) for v in value]
    return _string(value)


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ValueError("must be a pattern or a list of patterns")


def _seconds(value: Any) -> Any:
    return None if value is None or value == "" else duration(value)


Patterns = Annotated[str | list[str] | None, BeforeValidator(_strings)]


class MatchConfig(Strict):
    from_: Patterns = Field(default=None, alias="from")
    to: Patterns = None
    text: Patterns = None
    hours: Patterns = None
    timezone: str = "UTC"


class RouteConfig(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=64)
    gateway: str | None = None  # None: every gateway
    match: MatchConfig | None = None
    chat: str | None = None  # one chat; `chats` for several
    chats: list[str] | None = None
    thread: str | None = Field(default=None, min_length=1, max_length=128)
    replies: bool = True
    collapse: Annotated[float | None, BeforeValidator(_seconds)] = None
    continue_: bool | None = Field(default=None, alias="continue")
    action: Literal["post", "drop"] = "post"
    default: bool = False  # the gateway `/sms` uses in this chat when several are routed there


_NO_DROP = ("thread", "replies", "collapse", "continue_", "default")


def build_routes(
    routes: list[RouteConfig],
    gateways: list[str],
    chats: list[str],
    region: str | None = None,
) -> tuple[Routes, list[str]]:
    """The rules of ``routes``, and every problem found, each naming its path."""
    problems: list[str] = []
    rules: list[Rule] = []
    broken: set[int] = set()  # a match that did not parse is no catch-all: no duplicate
    legacy = all(route.match is None for route in routes)
    for index, route in enumerate(routes):
        before = len(problems)
        rules.append(_rule(index, route, set(gateways), set(chats), region, problems, legacy))
        if len(problems) > before:
            broken.add(index)
    names: set[str] = set()
    plain: set[tuple[str | None, str]] = set()
    for index, (route, rule) in enumerate(zip(routes, rules, strict=True)):
        if route.name is not None and route.name in names:
            problems.append(f"routes[{index}].name: duplicate name {route.name!r}")
        names.add(route.name or "")
        if rule.catch_all and rule.action == "post" and index not in broken:
            for chat in rule.chats:
                if (rule.gateway, chat) in plain:
                    shown = rule.gateway or "any gateway"
                    problems.append(f"routes[{index}]: duplicate route {shown} -> {chat}")
                plain.add((rule.gateway, chat))
    for chat in chats:
        if sum(1 for r in rules if r.default and chat in r.chats) > 1:
            problems.append(f"routes: chat {chat!r} has more than one default route")
    return Routes(tuple(rules), tuple(gateways), region), problems


def _rule(
    index: int,
    route: RouteConfig,
    gateways: set[str],
    chats: set[str],
    region: str | None,
    problems: list[str],
    legacy: bool = False,
) -> Rule:
    where = f"routes[{index}]"
    if route.gateway is not None and route.gateway not in gateways:
        problems.append(f"{where}.gateway: no gateway named {route.gateway!r}")
    targets: list[tuple[str, str]] = []
    if route.chat is not None:
        targets.append((f"{where}.chat", route.chat))
    for position, chat in enumerate(route.chats or ()):
        targets.append((f"{where}.chats[{position}]", chat))
    if route.chat is not None and route.chats is not None:
        problems.append(f"{where}: give chat or chats, not both")
    if route.action == "drop":
        for key in ("chat", "chats", *_NO_DROP):
            if key in route.model_fields_set:
                problems.append(
                    f"{where}.{key.rstrip('_')}: has no effect on a drop route "
                    "(it posts nowhere and stops); remove it"
                )
    elif not targets:
        problems.append(f"{where}.chats: field required (a route that posts needs chat or chats)")
    seen: set[str] = set()
    for path, chat in targets:
        if chat not in chats:
            problems.append(f"{path}: no chat named {chat!r}")
        elif chat in seen:
            problems.append(f"{path}: chat {chat!r} is listed twice")
        seen.add(chat)
    if route.default and route.gateway is None:
        problems.append(f"{where}.default: needs a gateway (the one /sms uses in these chats)")
    match = _match(f"{where}.match", route.match, region, problems) if route.match else Match()
    action = route.action
    continues = route.continue_
    if continues is None:
        continues = legacy and action == "post"
    return Rule(
        name=route.name or where,
        gateway=route.gateway,
        match=match,
        chats=tuple(dict.fromkeys(chat for _path, chat in targets)) if action == "post" else (),
        thread=route.thread,
        replies=route.replies,
        collapse=route.collapse,
        continue_=continues,
        action=action,
        default=route.default,
    )


def _items(where: str, value: str | list[str] | None, problems: list[str]) -> list[tuple[str, str]]:
    """(path, pattern) pairs: ``match.text`` for one string, ``match.text[1]`` in a list."""
    if value is None:
        return []
    if isinstance(value, str):
        return [(where, value)]
    if not value:
        key = where.rsplit(".", 1)[1]
        problems.append(f"{where}: give at least one pattern, or leave {key} out")
    return [(f"{where}[{i}]", v) for i, v in enumerate(value)]


def _match(where: str, match: MatchConfig, region: str | None, problems: list[str]) -> Match:
    found: dict[str, list[Any]] = {"from": [], "to": [], "text": []}
    for key, value in (("from", match.from_), ("to", match.to), ("text", match.text)):
        for path, source in _items(f"{where}.{key}", value, problems):
            try:
                if key == "text":
                    found[key].append(TextPattern.parse(source))
                else:
                    found[key].append(Pattern.parse(source, region))
            except PatternError as exc:
                problems.append(f"{path}: {exc}")
    hours = None
    try:
        zone(match.timezone)
    except HoursError as exc:
        problems.append(f"{where}.timezone: {exc}")
    else:
        specs = _items(f"{where}.hours", match.hours, problems)
        valid = bool(specs)
        for path, spec in specs:
            try:
                Hours.parse(spec, match.timezone)
            except HoursError as exc:
                problems.append(f"{path}: {exc}")
                valid = False
        if valid:
            hours = Hours.parse([s for _p, s in specs], match.timezone)
    return Match(tuple(found["from"]), tuple(found["to"]), tuple(found["text"]), hours)


def warnings(routes: Routes) -> list[str]:
    """What `smsbridge check` should point out in routes that are valid."""
    found: list[str] = []
    for gateway in routes.gateways:
        if not routes.has_catch_all(gateway):
            found.append(
                f"gateway {gateway} has no catch-all route (one without match): an SMS that "
                "no route takes is stored and counted as unrouted, never posted"
            )
    for index, rule in enumerate(routes.rules):
        for earlier in routes.rules[:index]:
            stops = earlier.catch_all and (earlier.action == "drop" or not earlier.continue_)
            if stops and (earlier.gateway is None or earlier.gateway == rule.gateway):
                found.append(
                    f"{_label(rule, index)} is never reached: {earlier.name} takes every SMS "
                    f"of {earlier.gateway or 'every gateway'} before it"
                )
                break
    return found


def _label(rule: Rule, index: int) -> str:
    where = f"routes[{index}]"
    return where if rule.name == where else f"{rule.name} ({where})"


def describe(rule: Rule) -> str:
    """One line for people: ``codes: office -> alerts (from BANK; thread "Codes")``."""
    target = "drop" if rule.action == "drop" else ", ".join(rule.chats)
    head = f"{rule.gateway or 'any gateway'} -> {target}"
    details = [
        *(f"{key} {', '.join(p.source for p in patterns)}" for key, patterns in _conditions(rule)),
        *(
            [f"hours {rule.match.hours.source} ({rule.match.hours.zone.key})"]
            if rule.match.hours
            else []
        ),
        *([f"thread {rule.thread!r}"] if rule.thread else []),
        *(["replies refused"] if not rule.replies else []),
        *([f"collapse {span(rule.collapse)}"] if rule.collapse else []),
        *(["continue"] if rule.continue_ and not rule.catch_all else []),
        *(
            ["stops here"]
            if rule.catch_all and rule.action == "post" and not rule.continue_
            else []
        ),
        *(["default"] if rule.default else []),
    ]
    return head + (f" ({'; '.join(details)})" if details else "")


def span(seconds: float) -> str:
    """``600`` -> ``10m``: a duration the way the config writes it."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _conditions(rule: Rule) -> list[tuple[str, tuple[Pattern | TextPattern, ...]]]:
    match = rule.match
    pairs: list[tuple[str, tuple[Pattern | TextPattern, ...]]] = [
        ("from", match.senders),
        ("to", match.receivers),
        ("text", match.texts),
    ]
    return [(key, patterns) for key, patterns in pairs if patterns]
