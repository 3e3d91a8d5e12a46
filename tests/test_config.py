"""The config file: the shipped example, ${ENV} expansion, and errors that name path and problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.cli import main
from bridge.config import load_config, parse_config, secrets_of
from bridge.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
ENV = {
    "SMSMOBILEAPI_KEY": "key-abc",
    "TELEGRAM_BOT_TOKEN": "123456:secret-token-value",
    "TELEGRAM_CHAT_ID": "-1001234567890",
    "TELEGRAM_USER_ID": "42",
}


def minimal(**gateway: object) -> dict[str, object]:
    return {
        "gateways": [{"name": "office", "type": "smsmobileapi", "api_key": "k", **gateway}],
        "chats": [{"name": "support", "type": "telegram", "bot_token": "1:x", "chat_id": -5}],
        "routes": [{"gateway": "office", "chat": "support"}],
    }


def problems(data: object, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, environ or {})
    return caught.value.problems


def test_shipped_example_loads_with_its_variables_set() -> None:
    config = load_config(ROOT / "config.example.yaml", environ=ENV)
    gateway = config.gateways[0]
    chat = config.chats[0]
    assert gateway.name == "office" and gateway.type == "smsmobileapi"
    assert chat.chat_id == -1001234567890  # type: ignore[attr-defined]
    assert chat.allowed_user_ids == [42]  # type: ignore[attr-defined]
    assert config.store.url == "sqlite:///./smsbridge.db"
    assert config.server.public_url is None  # ${VAR:-} unset means "not set"
    assert config.default_gateway("support") == "office"
    assert config.ops is not None and config.ops.chat == "support"


def test_example_names_every_missing_variable() -> None:
    found = problems_from_file({})
    assert "gateways[0].api_key: environment variable SMSMOBILEAPI_KEY is not set" in found
    assert "chats[0].bot_token: environment variable TELEGRAM_BOT_TOKEN is not set" in found
    assert len(found) == 4


def problems_from_file(environ: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(ROOT / "config.example.yaml", environ=environ)
    return caught.value.problems


def test_missing_key_is_named_with_its_path() -> None:
    data = minimal()
    del data["gateways"][0]["api_key"]  # type: ignore[index]
    assert problems(data) == ["gateways[0].api_key: field required"]


def test_unknown_key_and_unknown_type_are_errors() -> None:
    data = minimal(colour="blue")
    data["chats"][0]["type"] = "fax"  # type: ignore[index]
    found = problems(data)
    assert "gateways[0].colour: unknown key" in found
    assert "chats[0].type: unknown type 'fax' (known: slack, telegram)" in found


def test_env_default_and_dollar_escape() -> None:
    data = minimal(api_key="${KEY:-fallback}$$")
    config = parse_config(data, {})
    assert secrets_of(config)[0] == "fallback$"
    assert (
        parse_config(minimal(api_key="${KEY}"), {"KEY": "real"})
        .gateways[0]
        .api_key.get_secret_value()
        == "real"
    )  # type: ignore[attr-defined]


def test_webhook_receive_needs_a_token_or_secret() -> None:
    found = problems(minimal(receive="webhook"))
    assert len(found) == 1
    assert found[0].startswith("gateways[0]: receive: webhook needs webhook_token")


def test_short_webhook_token_is_refused() -> None:
    found = problems(minimal(receive="webhook", webhook_token="short"))
    assert found == [
        "gateways[0].webhook_token: must be at least 16 characters "
        "(it is the only thing guarding the URL)"
    ]


def test_routes_must_name_existing_gateways_and_chats() -> None:
    data = minimal()
    data["routes"] = [
        {"gateway": "office", "chat": "nowhere"},
        {"gateway": "home", "chat": "support"},
    ]
    found = problems(data)
    assert "routes[0].chat: no chat named 'nowhere'" in found
    assert "routes[1].gateway: no gateway named 'home'" in found


def test_duplicate_names_are_refused() -> None:
    data = minimal()
    data["gateways"].append(dict(data["gateways"][0]))  # type: ignore[attr-defined]
    assert "gateways[1].name: duplicate name 'office'" in problems(data)


def test_topics_need_a_group() -> None:
    data = minimal()
    data["chats"][0].update(chat_id=42, threads="topics")  # type: ignore[index]
    assert problems(data) == [
        "chats[0]: threads: topics needs a forum supergroup (a negative chat_id)"
    ]


def test_bad_yaml_gives_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("gateways: [\n  {name: x\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "line 3" in caught.value.problems[0]


def test_check_command_exits_non_zero_and_names_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "gateways:\n  - {name: office, type: smsmobileapi}\n"
        "chats:\n  - {name: support, type: telegram, bot_token: '1:x', chat_id: -5}\n"
        "routes:\n  - {gateway: office, chat: support}\n"
    )
    assert main(["check", "--config", str(path)]) == 2
    assert "gateways[0].api_key: field required" in capsys.readouterr().err


def test_check_command_accepts_the_example(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    assert main(["check", "--config", str(ROOT / "config.example.yaml")]) == 0
    out = capsys.readouterr().out
    assert "config OK" in out and "gateway office: smsmobileapi" in out
    assert ENV["TELEGRAM_BOT_TOKEN"] not in out


def test_the_postgresql_password_in_the_store_url_is_a_secret() -> None:
    data = minimal()
    data["store"] = {"url": "postgresql://bridge:${PGPASS}@db.internal:5432/smsbridge"}
    config = parse_config(data, {"PGPASS": "pg-pass-123"})
    assert "pg-pass-123" in secrets_of(config)
    assert config.store.lease_ttl == 10.0  # a dead instance's duties move within 10 s


def test_lease_ttl_out_of_range_is_an_error() -> None:
    data = minimal()
    data["store"] = {"url": "postgresql://db/x", "lease_ttl": 0.5}
    assert problems(data) == ["store.lease_ttl: input should be greater than or equal to 2"]


def test_watchdog_keys_default_and_are_checked() -> None:
    config = parse_config(minimal(), {})
    gateway = config.gateways[0]
    assert (gateway.watch_interval, gateway.down_after, gateway.battery_low) == (60, 300, 15)
    assert gateway.silence_after is None and gateway.sends_failing_after == 3
    assert config.ops is None
    found = problems(minimal(battery_low=101, watch_interval=0, sends_failing_after=0))
    assert "gateways[0].battery_low: input should be less than or equal to 100" in found
    assert "gateways[0].watch_interval: input should be greater than 0" in found
    assert "gateways[0].sends_failing_after: input should be greater than or equal to 1" in found


def test_ops_must_name_a_configured_chat() -> None:
    data = {**minimal(), "ops": {"chat": "nowhere"}}
    assert problems(data) == ["ops.chat: unknown chat 'nowhere' (configured: support)"]
    config = parse_config({**minimal(), "ops": {"chat": "support"}}, {})
    assert config.ops is not None and config.ops.thread == "Gateway health"
    assert problems({**minimal(), "ops": {"chat": "support", "topic": "x"}}) == [
        "ops.topic: unknown key"
    ]
