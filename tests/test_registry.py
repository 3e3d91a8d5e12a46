"""The connector registry: every entry resolves, and a process imports only what its config uses."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bridge.confbase import ChatConfigBase, GatewayConfigBase
from connectors import CHATS, GATEWAYS

ROOT = Path(__file__).resolve().parent.parent
SLACK_LIBRARIES = {"slack_bolt", "slack_sdk", "aiohttp"}


def _fresh_python(code: str) -> Any:
    """Run ``code`` in a new interpreter; it ends by printing one JSON line, returned here."""
    done = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=90
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", sorted(GATEWAYS))
def test_every_gateway_entry_resolves(name: str) -> None:
    kind = GATEWAYS[name]
    assert issubclass(kind.config, GatewayConfigBase)
    assert kind.config.model_fields["type"].annotation.__args__ == (name,)  # type: ignore[union-attr]
    assert callable(kind._load(kind.factory_at))
    assert isinstance(kind.fake, type)
    assert kind.example.is_file()


@pytest.mark.parametrize("name", sorted(CHATS))
def test_every_chat_entry_resolves(name: str) -> None:
    kind = CHATS[name]
    assert issubclass(kind.config, ChatConfigBase)
    assert kind.config.model_fields["type"].annotation.__args__ == (name,)  # type: ignore[union-attr]
    assert callable(kind._load(kind.factory_at))
    assert isinstance(kind.fake, type)
    assert kind.check([]) == []


def test_a_bridge_with_telegram_and_one_gateway_never_imports_the_slack_libraries() -> None:
    # The demo starts a real bridge (SMSMobileAPI + Telegram, against the fakes) and runs a whole
    # round trip: SMS in, topic, reply out, statuses.
    found = _fresh_python(
        "import asyncio, json, sys\n"
        "from bridge.demo import run_demo\n"
        "code = asyncio.run(run_demo())\n"
        "tops = sorted({m.split('.')[0] for m in sys.modules})\n"
        "print(json.dumps({'code': code, 'modules': tops}))"
    )
    assert found["code"] == 0
    modules = set(found["modules"])
    assert "telegram" in modules  # the check below looks at a process that really ran
    assert not modules & SLACK_LIBRARIES


def test_validating_a_config_imports_only_the_config_modules_of_its_types() -> None:
    found = _fresh_python(
        "import json, sys\n"
        "from bridge.config import parse_config\n"
        "parse_config({'gateways': [{'name': 'g', 'type': 'smsgate', 'mode': 'cloud',\n"
        "    'username': 'u', 'password': 'p', 'receive': 'webhook', 'signing_key': 'k'}],\n"
        "  'chats': [{'name': 'c', 'type': 'telegram', 'bot_token': '1:x', 'chat_id': -5}],\n"
        "  'routes': [{'gateway': 'g', 'chat': 'c'}]}, environ={})\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    modules = set(found)
    connectors = {m for m in modules if m.startswith("connectors.")}
    assert connectors == {
        "connectors.chat",
        "connectors.chat.telegram",
        "connectors.chat.telegram.config",
        "connectors.sms",
        "connectors.sms.smsgate",
        "connectors.sms.smsgate.config",
    }
    assert not {m.split(".")[0] for m in modules} & (SLACK_LIBRARIES | {"telegram"})


def test_an_unknown_type_names_every_registered_one() -> None:
    found = _fresh_python(
        "import json\n"
        "from bridge.config import parse_config\n"
        "from bridge.errors import ConfigError\n"
        "try:\n"
        "    parse_config({'gateways': [{'name': 'g', 'type': 'fax'}],\n"
        "      'chats': [{'name': 'c', 'type': 'pager'}], 'routes': []}, environ={})\n"
        "except ConfigError as exc:\n"
        "    import sys\n"
        "    print(json.dumps({'problems': exc.problems, 'modules': sorted(sys.modules)}))"
    )
    problems = found["problems"]
    assert (
        f"gateways[0].type: unknown type 'fax' (known: {', '.join(sorted(GATEWAYS))})" in problems
    )
    assert f"chats[0].type: unknown type 'pager' (known: {', '.join(sorted(CHATS))})" in problems
    assert not [m for m in found["modules"] if m.count(".") >= 2 and m.startswith("connectors.")]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_nothing_that_ships_imports_pytest() -> None:
    shipped = sorted(
        p for folder in ("bridge", "connectors") for p in (ROOT / folder).rglob("*.py")
    )
    assert len(shipped) > 50  # the walk found the packages
    offenders = [
        str(p.relative_to(ROOT)) for p in shipped if _imports(p) & {"pytest", "pytest_asyncio"}
    ]
    assert offenders == []
