"""`smsbridge conversations` and `smsbridge send` as an operator runs them: separate processes
beside a real running bridge (`smsbridge run`) on SQLite."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

import pytest
from cliops import ALICE, BOB, Running, cli, posted, sqlite_bridge
from conftest import config_dict

from bridge.commands.conversations import EXPORT_COLUMNS, LIST_COLUMNS, parse_since
from connectors.chat.telegram.fake import FakeTelegram
from connectors.sms.smsmobileapi.fake import FakeSmsMobileApi


async def test_conversations_export_and_list_every_sms_with_filters(
    tmp_path: Path, gateway: FakeSmsMobileApi, telegram: FakeTelegram
) -> None:
    async with sqlite_bridge(tmp_path, gateway, telegram) as running:
        config = str(running.config)
        await running.sms(gateway, ALICE, "first from alice")
        await running.sms(gateway, BOB, "=HYPERLINK(1) from bob")
        await running.sms(gateway, ALICE, "second from alice")
        await telegram.wait_for(lambda: len(posted(telegram)) >= 3, 10)
        task = asyncio.create_task(
            cli(
                "send", "--config", config, "--to", ALICE, "--text", "reply to alice", "--wait", "0"
            )
        )
        await gateway.wait_for(lambda: any(s.message == "reply to alice" for s in gateway.sent), 15)
        assert (await task).code == 3  # --wait 0: still on its way

        export = await cli("conversations", "export", "--config", config)
        assert export.code == 0, export
        assert export.out.splitlines()[0] == ",".join(EXPORT_COLUMNS)
        rows = export.csv()
        assert [(r["direction"], r["number"], r["text"]) for r in rows] == [
            ("in", ALICE, "first from alice"),
            ("in", BOB, "'=HYPERLINK(1) from bob"),  # a spreadsheet shows it, never runs it
            ("in", ALICE, "second from alice"),
            ("out", ALICE, "reply to alice"),
        ]
        assert [r["status"] for r in rows[:3]] == ["received"] * 3
        assert rows[3]["status"] == "queued" and rows[3]["author"].startswith("smsbridge send")
        assert all(r["gateway"] == "office" and r["time"].endswith("Z") for r in rows)
        assert rows[0]["chats"] == "support"

        # --number as people write it; --chat; --since as a date, a time or an age.
        alice = await cli(
            "conversations", "export", "--config", config, "--number", "+1 (555) 123-0001"
        )
        assert [r["text"] for r in alice.csv()] == [
            "first from alice",
            "second from alice",
            "reply to alice",
        ]
        assert (
            len((await cli("conversations", "export", "-c", config, "--chat", "support")).csv())
            >= 3
        )
        other = await cli("conversations", "export", "-c", config, "--chat", "elsewhere")
        assert other.code == 0 and other.csv() == [] and "elsewhere" in other.err
        assert len((await cli("conversations", "export", "-c", config, "--since", "1h")).csv()) == 4
        later = await cli("conversations", "export", "-c", config, "--since", "2999-01-01")
        assert later.code == 0 and later.out.splitlines() == [",".join(EXPORT_COLUMNS)]
        bad = await cli("conversations", "export", "-c", config, "--since", "last tuesday")
        assert (
            bad.code == 2 and "--since" in bad.err and "last tuesday" in bad.err and bad.out == ""
        )

        as_json = await cli(
            "conversations", "export", "-c", config, "--format", "json", "--number", BOB
        )
        [bob] = as_json.json()
        assert set(bob) == set(EXPORT_COLUMNS)
        assert bob["text"] == "=HYPERLINK(1) from bob" and bob["chats"] == ["support"]

        target = tmp_path / "list.csv"
        listed = await cli("conversations", "list", "-c", config, "--output", str(target))
        assert listed.code == 0 and listed.out == ""
        summary = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
        assert list(summary[0]) == list(LIST_COLUMNS)
        by_number = {r["number"]: r for r in summary}
        assert set(by_number) == {ALICE, BOB}
        assert (by_number[ALICE]["received"], by_number[ALICE]["sent"]) == ("2", "1")
        assert (by_number[BOB]["received"], by_number[BOB]["sent"]) == ("1", "0")
        assert summary[0]["number"] == ALICE  # the latest conversation first


async def test_send_goes_through_the_outbox_once_and_waits_for_a_bridge(
    tmp_path: Path, gateway: FakeSmsMobileApi, telegram: FakeTelegram
) -> None:
    running = Running(
        tmp_path, config_dict(f"sqlite:///{tmp_path / 'store.db'}", gateway, telegram)
    )
    config = str(running.config)
    bad = await cli("send", "--config", config, "--to", "not a number", "--text", "x")
    assert bad.code == 2 and "--to" in bad.err
    unknown = await cli("send", "-c", config, "--to", ALICE, "--text", "x", "--gateway", "nope")
    assert unknown.code == 2 and "nope" in unknown.err
    never = await cli("send", "-c", config, "--to", ALICE, "--text", "too early")
    assert never.code == 1 and "nothing was queued" in never.err
    assert not (tmp_path / "store.db").exists()  # a command never creates the store

    await running.start()
    try:
        await running.process.terminate()
        queued = await cli("send", "-c", config, "--to", ALICE, "--text", "while stopped")
        assert queued.code == 1 and "stays queued" in queued.err, queued
        await running.start()
        await gateway.wait_for(lambda: any(s.message == "while stopped" for s in gateway.sent), 15)

        task = asyncio.create_task(
            cli("send", "-c", config, "--to", "+1 555 123 0002", "--text", "from a shell")
        )
        await gateway.wait_for(lambda: any(s.message == "from a shell" for s in gateway.sent), 15)
        [sms] = [s for s in gateway.sent if s.message == "from a shell"]
        assert sms.recipients == BOB
        await asyncio.sleep(1.5)  # "queued" shows before the receipt moves it on
        response = await gateway.deliver_status_v2(running.hook, sms.guid, "sms.sent")
        assert response.status_code in (200, 202), response.text
        result = await task
        assert result.code == 0, result
        statuses = [line.split(": ", 1)[1] for line in result.out.splitlines()[1:]]
        assert statuses[-1] == f"sent (gateway id {sms.guid})"
        assert any(s.startswith("queued, accepted by the gateway") for s in statuses[:-1])
        # The number's thread shows it, with who sent it.
        await telegram.wait_for(
            lambda: any("smsbridge send" in t and "from a shell" in t for t in posted(telegram)),
            10,
        )
        await asyncio.sleep(2.5)  # an idle poll of the outbox: anything sent twice shows now
        texts = [s.message for s in gateway.sent]
        assert texts.count("from a shell") == 1 and texts.count("while stopped") == 1
    finally:
        running.process.kill()
        print(running.process.tail())


async def test_send_finds_its_config_without_config_as_the_issue_writes_it(
    tmp_path: Path, gateway: FakeSmsMobileApi, telegram: FakeTelegram
) -> None:
    """`smsbridge send --to N --text T`: the config from $SMSBRIDGE_CONFIG, else ./config.yaml."""
    running = Running(
        tmp_path, config_dict(f"sqlite:///{tmp_path / 'store.db'}", gateway, telegram)
    )
    found = await cli(
        "send", "--to", "not a number", "--text", "x",
        env={"SMSBRIDGE_CONFIG": str(running.config)},
    )  # fmt: skip
    assert found.code == 2 and "--to" in found.err, found  # read the config, then the number
    missing = await cli("send", "--to", ALICE, "--text", "x")  # the repo has no config.yaml
    assert missing.code == 2 and "config.yaml" in missing.err, missing


def test_since_takes_dates_times_and_ages() -> None:
    assert parse_since("2026-12-01") == 1796083200.0  # midnight UTC
    assert parse_since("2026-12-01T09:00+01:00") == 1796083200.0 + 8 * 3600
    assert parse_since("90m", at=10_000.0) == 10_000.0 - 5400
    assert parse_since("7d", at=1e6) == 1e6 - 7 * 86400
    with pytest.raises(ValueError, match="--since: 'soon' is not a date"):
        parse_since("soon")
