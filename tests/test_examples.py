"""Every connector's example config (connectors/<kind>/<name>/example.yaml) loads, and the
README's snippets and links follow the registry, so none of them can rot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from bridge.config import load_config, parse_config
from bridge.errors import ConfigError
from connectors import CHATS, GATEWAYS

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES: dict[str, Path] = {name: kind.example for name, kind in GATEWAYS.items()} | {
    name: kind.example for name, kind in CHATS.items()
}
_REQUIRED = re.compile(r"\$\{([A-Z0-9_]+)\}")


def _variables(path: Path) -> dict[str, str]:
    """A plausible value for every ${VAR} the example needs (not for ${VAR:-default})."""
    values = {
        "TELEGRAM_CHAT_ID": "-1001234567890",
        "TELEGRAM_USER_ID": "42",
        "TELEGRAM_BOT_TOKEN": "123456:secret-token-value",
        "SMSBRIDGE_PUBLIC_URL": "https://sms.example.com",
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "IP1_SENDER": "Shop",
        "TWILIO_FROM": "+15550001111",
        "SMSTOOLS_SENDER": "+32460260667",
        "SLACK_CHANNEL": "C0123456789",
        "SLACK_BOT_TOKEN": "xoxb-1-2-abc",
        "SLACK_APP_TOKEN": "xapp-1-A1-2-abc",
    }
    lines = path.read_text(encoding="utf-8").splitlines()
    found = {name for line in lines for name in _REQUIRED.findall(line.split("#", 1)[0])}
    return {name: values.get(name, f"value-of-{name.lower().replace('_', '-')}") for name in found}


def test_every_example_belongs_to_a_registered_connector() -> None:
    assert set((ROOT / "connectors").glob("*/*/example.yaml")) == set(EXAMPLES.values())


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_loads(name: str) -> None:
    path = EXAMPLES[name]
    config = load_config(path, environ=_variables(path))
    assert config.routes and config.gateways and config.chats
    assert name in {g.type for g in config.gateways} | {c.type for c in config.chats}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_names_what_is_missing(name: str) -> None:
    path = EXAMPLES[name]
    needed = _variables(path)
    assert needed  # every example takes its secrets from the environment
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    named = " ".join(caught.value.problems)
    assert all(variable in named for variable in needed)


def test_the_readme_links_the_example_of_every_connector() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for path in EXAMPLES.values():
        link = path.relative_to(ROOT).as_posix()
        assert f"]({link})" in readme, f"README.md does not link {link}"


def test_the_readme_snippets_of_every_gateway_load() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", readme, re.DOTALL)
    [block] = [b for b in blocks if "type: smsgateway24" in b]
    data = yaml.safe_load(block)
    assert {g["type"] for g in data["gateways"]} == set(GATEWAYS)
    data["server"] = {"public_url": "https://sms.example.com"}
    data["chats"] = [{"name": "support", "type": "telegram", "bot_token": "1:x", "chat_id": -5}]
    environ = {name: f"value-{name.lower()}" for name in _REQUIRED.findall(block)}
    environ["TWILIO_ACCOUNT_SID"] = "AC" + "0" * 32
    environ["TWILIO_FROM"] = "+15550001111"
    environ["IP1_SENDER"] = "Shop"
    environ["IP1_WEBHOOK_TOKEN"] = "ip1-token-0123456789abcdef"
    config = parse_config(data, environ)
    assert config.default_gateway("support") == "office"
