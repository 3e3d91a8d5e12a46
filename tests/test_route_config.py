"""The `routes:` config (bridge/routeconf.py), `smsbridge check` warnings, `smsbridge route`."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.cli import main
from bridge.config import Config, parse_config
from bridge.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
AT = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)  # a Thursday


def config(*routes: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "gateways": [
            {"name": "office", "type": "smsmobileapi", "api_key": "k"},
            {"name": "home", "type": "smsmobileapi", "api_key": "k2"},
        ],
        "chats": [
            {"name": n, "type": "telegram", "bot_token": f"{i}:x", "chat_id": -i - 1}
            for i, n in enumerate(("support", "alerts", "team"))
        ],
        "routes": list(routes),
        **extra,
    }


def problems(*routes: dict[str, Any], **extra: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(config(*routes, **extra), {})
    return caught.value.problems


def load(*routes: dict[str, Any], **extra: Any) -> Config:
    return parse_config(config(*routes, **extra), {})


def test_a_config_without_rules_behaves_as_before() -> None:
    old = load(
        {"gateway": "office", "chat": "support"},
        {"gateway": "home", "chat": "support", "default": True},
        {"gateway": "office", "chat": "team"},
    )
    assert old.chats_for("office") == ["support", "team"]
    assert old.chats_for("home") == ["support"]
    assert old.default_gateway("support") == "home"
    assert old.default_gateway("team") == "office"
    assert old.default_gateway("alerts") is None
    routes = old.routes_value()
    # Every route of a gateway gets its SMS, whatever the sender, text or time.
    for sender, text in (("+15551234567", "hi"), ("BANK", "")):
        assert routes.evaluate("office", sender, text, at=AT).chats == ("support", "team")
    assert routes.mirrors_for("office") == ["support", "team"]


def test_with_rules_the_first_matching_route_takes_the_sms_catch_alls_included() -> None:
    routes = load(
        {"match": {"text": "outage"}, "chat": "alerts", "thread": "Ops"},
        {"gateway": "office", "chat": "support"},
        {"gateway": "office", "chat": "team"},  # reached only by `continue` on the one above
        {"gateway": "office", "chat": "alerts", "continue": True},
    ).routes_value()
    assert routes.evaluate("office", "+15551234567", "Outage!", at=AT).chats == ("alerts",)
    assert routes.evaluate("office", "+15551234567", "hello", at=AT).chats == ("support",)
    fan_out = load(
        {"gateway": "office", "chat": "alerts", "thread": "All", "continue": True},
        {"gateway": "office", "chat": "alerts", "match": {"text": "hello"}},
    ).routes_value()
    # Two threads of one chat: one post in each.
    decision = fan_out.evaluate("office", "+15551234567", "hello", at=AT)
    placed = [(d.chat, d.thread) for d in decision.deliveries]
    assert placed == [("alerts", "All"), ("alerts", None)]


def test_the_issue_example_loads_and_routes() -> None:
    cfg = load(
        {
            "name": "codes",
            "gateway": "office",
            "match": {
                "from": ["BANK", "+1555*", r"re:^\d{4,6}$"],
                "to": ["+32460260667"],
                "text": ["verification", r"re:(?i)\bcode\b"],
                "hours": "Mon-Fri 08:00-18:00",
                "timezone": "Europe/Brussels",
            },
            "chats": ["alerts"],
            "thread": "Codes",
            "replies": False,
            "collapse": "10m",
            "continue": False,
        },
        {"gateway": "office", "match": {"from": "re:^[A-Za-z]"}, "action": "drop"},
        {"gateway": "office", "chats": ["support", "team"], "default": True},
    )
    routes = cfg.routes_value()
    code = routes.evaluate("office", "BANK", "Your code", at=AT, device="+32460260667")
    assert code.chats == ("alerts",)
    delivery = code.deliveries[0]
    assert (delivery.thread, delivery.replies, delivery.collapse) == ("Codes", False, 600.0)
    assert routes.evaluate("office", "BANK", "Your code", at=AT).dropped  # no `to`: not codes
    assert routes.evaluate("office", "+15550001111", "hi", at=AT).chats == ("support", "team")
    assert routes.evaluate("home", "+15550001111", "hi", at=AT).unrouted
    assert cfg.default_gateway("team") == "office"


def test_a_short_code_written_as_a_yaml_number() -> None:
    cfg = load({"match": {"from": [12345], "to": 2}, "chat": "alerts"}, {"chat": "support"})
    routes = cfg.routes_value()
    assert routes.evaluate("home", "12345", "x", at=AT, sim=2).chats == ("alerts",)


def test_bad_patterns_name_their_path() -> None:
    found = problems(
        {"chat": "support"},
        {"chat": "support", "gateway": "home"},
        {"match": {"text": ["ok", "re:(oops"], "from": "re:["}, "chat": "alerts"},
        {"match": {"to": [], "text": ""}, "chat": "alerts"},
    )
    assert found == [
        "routes[2].match.from: invalid regex: unterminated character set at position 0",
        "routes[2].match.text[1]: invalid regex: missing ), unterminated subpattern at position 0",
        "routes[3].match.to: give at least one pattern, or leave to out",
    ]


def test_unknown_names_timezones_and_malformed_hours() -> None:
    found = problems(
        {"gateway": "attic", "chats": ["support", "pager"]},
        {"match": {"hours": ["Mon-Fri 08:00-18:00", "Sun 8h"]}, "chat": "alerts"},
        {"match": {"hours": "Mon", "timezone": "Mars/Olympus"}, "chat": "alerts"},
    )
    assert found == [
        "routes[0].gateway: no gateway named 'attic'",
        "routes[0].chats[1]: no chat named 'pager'",
        "routes[1].match.hours[1]: invalid hours 'Sun 8h': '8h' is not a time range (write "
        "e.g. 'Mon-Fri 08:00-18:00' or 'Sat,Sun 10:00-14:00; Mon 22:00-06:00')",
        "routes[2].match.timezone: unknown timezone 'Mars/Olympus' (write e.g. Europe/Brussels)",
    ]


def test_the_shape_of_a_route_is_checked_first() -> None:
    found = problems(
        {"chat": "support"},
        {"match": {"text": 3.5, "form": "x"}, "chat": "alerts"},
        {"chat": "alerts", "collapse": "soon", "action": "mail", "continue": "maybe"},
    )
    assert found == [
        "routes[1].match.text: must be a pattern or a list of patterns",
        "routes[1].match.form: unknown key",
        "routes[2].collapse: invalid duration 'soon': write e.g. 30s, 10m, 1h or a number "
        "of seconds",
        "routes[2].continue: input should be a valid boolean, unable to interpret input",
        "routes[2].action: input should be 'post' or 'drop'",
    ]


def test_what_a_route_posts_and_drops() -> None:
    found = problems(
        {"gateway": "office", "match": {"text": "x"}},
        {"gateway": "office", "action": "drop", "chat": "support", "thread": "T", "continue": 1},
        {"gateway": "office", "chat": "support", "chats": ["team", "team"]},
    )
    effect = "has no effect on a drop route (it posts nowhere and stops); remove it"
    assert found == [
        "routes[0].chats: field required (a route that posts needs chat or chats)",
        f"routes[1].chat: {effect}",
        f"routes[1].thread: {effect}",
        f"routes[1].continue: {effect}",
        "routes[2]: give chat or chats, not both",
        "routes[2].chats[1]: chat 'team' is listed twice",
    ]


def test_duplicates_and_defaults() -> None:
    found = problems(
        {"name": "a", "gateway": "office", "chat": "support", "default": True},
        {"name": "a", "gateway": "office", "chats": ["support"], "default": True},
        {"chat": "team", "default": True},
        {"gateway": "office", "match": {"text": "x"}, "chat": "support"},  # not a duplicate
    )
    assert found == [
        "routes[2].default: needs a gateway (the one /sms uses in these chats)",
        "routes[1].name: duplicate name 'a'",
        "routes[1]: duplicate route office -> support",
        "routes: chat 'support' has more than one default route",
    ]


def write(tmp_path: Path, *routes: dict[str, Any]) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config(*routes)))
    return str(path)


def test_check_warns_about_gateways_without_a_catch_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        {"name": "codes", "match": {"text": "code"}, "chat": "alerts"},
        {"gateway": "office", "chat": "support"},
        {"gateway": "office", "action": "drop"},
    )
    assert main(["check", "--config", path]) == 0
    out = capsys.readouterr().out
    assert "route codes: any gateway -> alerts (text code)" in out
    assert "route routes[1]: office -> support" in out
    assert "warning: gateway home has no catch-all route" in out
    assert "warning: gateway office" not in out


def test_check_warns_about_routes_never_reached(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        {"chat": "support", "continue": False},
        {"name": "late", "gateway": "home", "match": {"text": "x"}, "chat": "alerts"},
    )
    assert main(["check", "--config", path]) == 0
    out = capsys.readouterr().out
    assert "warning: late (routes[1]) is never reached: routes[0] takes every SMS" in out
    assert "no catch-all" not in out


ALERTS = (
    {
        "name": "critical",
        "match": {
            "text": "CRITICAL",
            "hours": "Mon-Fri 08:00-18:00",
            "timezone": "Europe/Brussels",
        },
        "chats": ["alerts"],
        "thread": "Critical",
        "replies": False,
        "collapse": "10m",
        "continue": True,
    },
    {"name": "spam", "gateway": "office", "match": {"from": "re:^[A-Za-z]"}, "action": "drop"},
    {"gateway": "office", "chats": ["support"], "default": True},
)


def route(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["route", "--config", write(tmp_path, *ALERTS), *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_route_shows_matches_in_order_and_where_the_sms_goes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = route(
        tmp_path, capsys, "--from", "+1 555 123 4567", "--text", "CRITICAL: disk full",
        "--at", "2026-12-03T09:00",
    )  # fmt: skip
    assert code == 0
    assert out.splitlines() == [
        "gateway office: SMS from +15551234567 at 2026-12-03T09:00:00+00:00",
        "  match    critical (routes[0]): continue",
        "  no       spam (routes[1]): from does not match",
        "  match    routes[2]",
        "  => alerts: thread 'Critical', replies refused, collapse 10m",
        "  => support: a thread per number",
        "gateway home: SMS from +15551234567 at 2026-12-03T09:00:00+00:00",
        "  match    critical (routes[0]): continue",
        "  => alerts: thread 'Critical', replies refused, collapse 10m",
    ]


def test_route_shows_drops_and_unrouted_sms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 17:30 UTC is 18:30 in Brussels: outside the critical route's hours.
    code, out = route(tmp_path, capsys, "--from", "BANK", "--text", "CRITICAL",
                      "--at", "2026-12-03T17:30Z")  # fmt: skip
    assert code == 0
    assert "  no       critical (routes[0]): hours does not match" in out
    assert "  match    spam (routes[1]): drop\n  -        routes[2]: not reached" in out
    assert "  => dropped by spam (routes[1]): stored, counted, not posted" in out
    assert out.endswith("gateway home: SMS from BANK at 2026-12-03T17:30:00+00:00\n"
                        "  no       critical (routes[0]): hours does not match\n"
                        "  => unrouted: stored, counted, not posted\n")  # fmt: skip
    code, out = route(tmp_path, capsys, "--from", "BANK", "-g", "home",
                      "--at", "2026-12-03T10:30+01:00", "--text", "critical")  # fmt: skip
    assert out.splitlines()[-1] == "  => alerts: thread 'Critical', replies refused, collapse 10m"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gateway", "attic"], "--gateway: no gateway named 'attic' (known: office, home)"),
        (["--at", "tomorrow"], "--at: 'tomorrow' is not a date and time (e.g. 2026-12-03T09:00)"),
    ],
)
def test_route_refuses_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out = route(tmp_path, capsys, "--from", "+15551234567", *args)
    assert (code, out) == (2, f"smsbridge route: {message}\n")
    code, out = route(tmp_path, capsys, "--from", "!!")
    assert code == 2 and "'--from' is not a phone number, short code or sender ID" in out


def test_route_runs_as_a_command_without_a_store(tmp_path: Path) -> None:
    path = write(tmp_path, *ALERTS)
    done = subprocess.run(  # noqa: S603 - our own CLI with fixed arguments
        [sys.executable, "-m", "bridge.cli", "route", "-c", path, "--from", "BANK"],
        capture_output=True, text=True, cwd=tmp_path, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "dropped by spam" in done.stdout
    assert list(tmp_path.iterdir()) == [Path(path)]  # no smsbridge.db was created


def test_the_commented_alerts_example_in_config_example_yaml_loads() -> None:
    text = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
    block = text.split("\nroutes:\n", 1)[1]
    # Uncomment the example routes ("  # - ..." and their "  #   ..." lines).
    lines = [
        line.replace("  # ", "  ", 1) if line.startswith(("  # -", "  #   ")) else line
        for line in block.splitlines()
    ]
    routes = yaml.safe_load("\n".join(lines))
    assert [r.get("name") for r in routes] == ["critical", "codes", "spam", None]
    cfg = parse_config(config(*routes), {})
    assert cfg.routes_value().rules[0].thread == "Critical"
