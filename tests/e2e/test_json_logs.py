"""`log_format: json`: a real `smsbridge run`, SMS in, replies out, failures, a SIGTERM; every
line it writes is one JSON object, with the context fields, no secret, and no customer's number
unless `log_numbers: full`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import AGENT, CUSTOMER, GROUP, config_dict
from processes import BridgeProcess
from test_security import leaks, secrets_of

from bridge import logs
from bridge.phone import pretty
from bridge.testing.fake_harness import free_port
from connectors.chat.telegram.fake import FakeTelegram
from connectors.sms.smsmobileapi.fake import FakeSmsMobileApi

LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
MASKED = "…" + CUSTOMER[-4:]
# Every way the customer's number could be written in a log line: E.164, without its "+"
# (a URL, a vendor payload), the national digits, as people read it, URL-encoded.
SPELLINGS = [CUSTOMER, CUSTOMER[1:], CUSTOMER[2:], pretty(CUSTOMER), "%2B" + CUSTOMER[1:]]


def posts(telegram: FakeTelegram) -> list[str]:
    return [m.get("text") or "" for m in telegram.sent_messages(GROUP)]


def json_bridge(
    tmp_path: Path, name: str, gateway: FakeSmsMobileApi, telegram: FakeTelegram, **top: Any
) -> BridgeProcess:
    """A bridge process logging JSON, on the SQLite file every one of this test shares."""
    port = free_port()
    data = config_dict(
        f"sqlite:///{tmp_path / 'bridge.db'}",
        gateway,
        telegram,
        server={"host": "127.0.0.1", "port": port},
        log_format="json",
        **top,
    )
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    return BridgeProcess(config, tmp_path / f"{name}.log", port)


def parse(text: str) -> list[dict[str, Any]]:
    """Every line of a process's output as a JSON object, or the first that is not."""
    parsed = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"line {number} is not JSON: {line!r}") from None
        assert isinstance(record, dict), line
        parsed.append(record)
    return parsed


async def run_bridge(
    tmp_path: Path,
    gateway: FakeSmsMobileApi,
    telegram: FakeTelegram,
    level: str,
    numbers: str,
) -> list[dict[str, Any]]:
    """Run the scenario against a real process; every line of its output, parsed."""
    bridge = json_bridge(
        tmp_path, "bridge", gateway, telegram, log_level=level, log_numbers=numbers
    )
    port = int(bridge.url.rsplit(":", 1)[1])
    telegram.fail_next("getMe", status=401, description="Unauthorized")  # a warning at start
    try:
        bridge.start()
        await bridge.healthy()
        hook = f"{bridge.url}/webhooks/sms/office"
        sms = gateway.receive_sms(CUSTOMER, f"hello, call me on {CUSTOMER}")
        assert (await gateway.deliver_received_v2(hook, sms)).status_code == 202
        await telegram.wait_for(lambda: len(telegram.topics(GROUP)) == 1, timeout=10)
        thread = telegram.topics(GROUP)[0].thread_id

        # A reply out; then one the vendor refuses naming the number; one that must wait.
        first = telegram.user_message(GROUP, AGENT, "reply one", thread_id=thread, first_name="Sam")
        await gateway.wait_for(lambda: len(gateway.sent) == 1, timeout=10)
        telegram.redeliver(GROUP, first["message_id"])  # handled again: a DEBUG line says so
        await telegram.wait_for(lambda: not telegram.pending_updates(), timeout=10)
        # The vendor's refusal quotes the number, and our key (the log must mask both).
        barred = f"{CUSTOMER} is barred for key {gateway.api_key}"
        refusal = {"result": {"error": 1, "sent": 0, "message": barred}}
        gateway.fail_next("/sendsms/", status=200, body=refusal)
        telegram.user_message(GROUP, AGENT, "reply two", thread_id=thread, first_name="Sam")
        await telegram.wait_for(lambda: any("SMS not sent" in p for p in posts(telegram)), 10)
        gateway.fail_next("/sendsms/", status=500, count=10)
        telegram.user_message(GROUP, AGENT, "reply three", thread_id=thread, first_name="Sam")
        await gateway.wait_for(
            lambda: sum(r.path == "/sendsms/" for r in gateway.requests) >= 3, timeout=10
        )
        # Garbage on the port: uvicorn warns, through the same formatter as the rest.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        await reader.read()
        writer.close()
        # /history logs the number as people write it.
        telegram.user_message(GROUP, AGENT, "/history", thread_id=thread, first_name="Sam")
        await telegram.wait_for(lambda: any(p.startswith("📜") for p in posts(telegram)), 10)
        await asyncio.sleep(0.5)  # the log line follows the post's queueing

        assert bridge.proc is not None
        os.kill(bridge.proc.pid, signal.SIGTERM)
        # In a thread: the fakes live on this loop and must answer the calls in flight.
        code = await asyncio.to_thread(bridge.proc.wait, 15)
        assert code == 0, bridge.tail()
    finally:
        bridge.kill()
    text = bridge.log.read_text(encoding="utf-8")
    print(text)
    parsed = parse(text)
    assert len(parsed) >= 5, text
    leaked = leaks(text, secrets_of(gateway, telegram))
    assert leaked == [], leaked
    assert f"for key {logs.MASK}" in text  # the key the vendor quoted was there, masked
    return parsed


def check_shape(records: list[dict[str, Any]]) -> None:
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record), record
        when = datetime.fromisoformat(record["time"])
        assert when.utcoffset() == timedelta(0), record  # UTC, with its offset written
        assert abs((datetime.now(UTC) - when).total_seconds()) < 120, record
        assert record["level"] in LEVELS, record
        assert isinstance(record["message"], str) and isinstance(record["logger"], str)
        assert set(record) <= {"time", "level", "logger", "message", "exc", "stack"} | {
            "gateway",
            "chat",
            "number",
            "outbox_id",
        }, record
    messages = [r["message"] for r in records]
    assert "smsbridge stopped" in messages, messages
    assert any(r["level"] == "WARNING" and r["logger"].startswith("connectors") for r in records)
    assert any(r["level"] == "WARNING" and r["logger"].startswith("uvicorn") for r in records)


def failure(records: list[dict[str, Any]]) -> dict[str, Any]:
    [refused] = [r for r in records if "is barred" in r["message"]]
    assert refused["level"] == "WARNING", refused
    assert refused["gateway"] == "office" and isinstance(refused["outbox_id"], int), refused
    return refused


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
async def test_every_line_is_json_with_context_and_no_number_or_secret(
    tmp_path: Path, gateway: FakeSmsMobileApi, telegram: FakeTelegram, level: str
) -> None:
    records = await run_bridge(tmp_path, gateway, telegram, level, "masked")
    check_shape(records)
    refused = failure(records)
    assert refused["number"] == MASKED
    assert f"{MASKED} is barred for key {logs.MASK}" in refused["message"]
    retried = [r for r in records if "will be retried" in r["message"]]
    assert retried and all(r["gateway"] == "office" and r["outbox_id"] for r in retried)
    [history] = [r for r in records if r["message"].startswith("history of")]
    assert history["message"].startswith(f"history of {MASKED}: "), history
    assert history["number"] == MASKED and history["chat"] == "support"
    raw = json.dumps(records, ensure_ascii=False)
    for spelling in SPELLINGS:
        assert spelling not in raw, spelling
    again = [r for r in records if "was already queued" in r["message"]]
    if level == "DEBUG":
        [line] = again
        assert line["level"] == "DEBUG" and line["logger"] == "bridge.replies", line
        assert (line["gateway"], line["chat"], line["number"]) == ("office", "support", MASKED)
    else:
        assert again == []


async def test_log_numbers_full_shows_the_number(
    tmp_path: Path, gateway: FakeSmsMobileApi, telegram: FakeTelegram
) -> None:
    records = await run_bridge(tmp_path, gateway, telegram, "INFO", "full")
    check_shape(records)
    refused = failure(records)
    assert refused["number"] == CUSTOMER
    assert f"{CUSTOMER} is barred" in refused["message"]
    [history] = [r for r in records if r["message"].startswith("history of")]
    assert pretty(CUSTOMER) in history["message"] and history["number"] == CUSTOMER
    assert MASKED not in json.dumps(records, ensure_ascii=False)


async def test_a_second_process_on_the_same_sqlite_file_says_why_in_json(
    tmp_path: Path, gateway: FakeSmsMobileApi, telegram: FakeTelegram
) -> None:
    first = json_bridge(tmp_path, "first", gateway, telegram)
    second = json_bridge(tmp_path, "second", gateway, telegram)
    try:
        first.start()
        await first.healthy()
        second.start()
        assert second.proc is not None
        assert await asyncio.to_thread(second.proc.wait, 30) == 2
    finally:
        second.kill()
        first.kill()
    records = parse(second.log.read_text(encoding="utf-8"))
    [refused] = [r for r in records if "is in use by another smsbridge process" in r["message"]]
    assert refused["level"] == "ERROR", refused
