"""The opt_out and max_segments keys: defaults, the shipped example, errors naming the path;
and which SMS are keywords."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bridge.config import OptOutConfig, load_config, parse_config
from bridge.errors import ConfigError
from bridge.optout import Keywords

ROOT = Path(__file__).resolve().parent.parent
ENV = {
    "SMSMOBILEAPI_KEY": "key-abc",
    "TELEGRAM_BOT_TOKEN": "123456:secret-token-value",
    "TELEGRAM_CHAT_ID": "-1001234567890",
    "TELEGRAM_USER_ID": "42",
}
BASE = {
    "gateways": [{"name": "office", "type": "smsmobileapi", "api_key": "k"}],
    "chats": [{"name": "support", "type": "telegram", "bot_token": "1:x", "chat_id": -5}],
    "routes": [{"gateway": "office", "chat": "support"}],
}


def problems(**top: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config({**BASE, **top}, {})
    return caught.value.problems


def test_defaults_and_the_shipped_example_agree() -> None:
    default = parse_config(BASE, {})
    example = load_config(ROOT / "config.example.yaml", environ=ENV)
    assert default.opt_out == example.opt_out
    assert default.opt_out.stop == ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"]
    assert default.opt_out.start == ["START", "UNSTOP", "YES"]
    assert default.opt_out.confirmation is None
    assert default.max_segments == example.max_segments == 6


def test_bad_values_name_their_path() -> None:
    assert problems(max_segments=0) == ["max_segments: input should be greater than or equal to 1"]
    assert problems(opt_out={"stop": []}) == [
        "opt_out.stop: list should have at least 1 item after validation, not 0"
    ]
    assert problems(opt_out={"start": ["GO", " "]}) == [
        "opt_out.start: a keyword must not be empty"
    ]
    assert problems(opt_out={"stop": ["stop", "Go"], "start": ["go"]}) == [
        "opt_out: keywords both in stop and start: go"
    ]
    # An empty value is no value (as ${VAR:-} is): no confirmation.
    assert parse_config({**BASE, "opt_out": {"confirmation": ""}}, {}).opt_out.confirmation is None
    assert problems(opt_out={"stopp": ["X"]}) == ["opt_out.stopp: unknown key"]


def test_an_unquoted_yes_in_yaml_is_explained() -> None:
    data = yaml.safe_load("opt_out:\n  start: [START, YES]\n")
    assert problems(**data) == [
        'opt_out.start: quote YES, NO, ON and OFF ("YES"): YAML reads them as true/false'
    ]


@pytest.mark.parametrize(
    ("text", "opted_out"),
    [
        ("STOP", True),
        ("  stop\n", True),
        ("Cancel", True),
        ("yes", False),
        ("UnStop", False),
        ("stop please", None),
        ("STOP!", None),
        ("", None),
    ],
)
def test_only_a_whole_keyword_changes_anything(text: str, opted_out: bool | None) -> None:
    change = Keywords(OptOutConfig()).change("+15551234567", text)
    assert (change.opted_out if change else None) == opted_out
    if change is not None:
        assert "+1 555-123-4567" in change.notice and change.confirmation is None
