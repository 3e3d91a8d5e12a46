"""`smsbridge status` as an operator runs it: a separate process beside a real running bridge
(`smsbridge run`), on SQLite (whose file the bridge holds) and on PostgreSQL with two
instances; and the read-only store it opens."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cliops import ALICE, BOB, DUTIES, Running, cli, posted, sqlite_bridge
from conftest import config_dict

from bridge.commands.status import render, watchdog
from bridge.config import StoreConfig
from bridge.errors import StoreNotReady
from bridge.store.engine import Database
from bridge.store.schema import leases
from bridge.store.sql import SqlStore
from connectors.chat.telegram.fake import FakeTelegram
from connectors.sms.smsmobileapi.fake import FakeSmsMobileApi


async def test_status_reads_a_running_sqlite_bridge_and_exits_1_once_it_is_gone(
    tmp_path: Path, gateway: FakeSmsMobileApi, telegram: FakeTelegram
) -> None:
    async with sqlite_bridge(tmp_path, gateway, telegram) as running:
        await running.sms(gateway, ALICE, "hello status")
        await telegram.wait_for(lambda: any("hello status" in t for t in posted(telegram)), 10)
        config = str(running.config)
        instance = (await running.process.health())["instance"]

        result = await cli("status", "--config", config, "--json")
        assert result.code == 0, result
        report = result.json()
        assert report["ok"] is True and report["problems"] == []
        assert report["bridge"]["state"] == "ok" and report["bridge"]["instance"] == instance
        assert report["store"] == {"state": "ok", "kind": "sqlite"}
        assert report["gateways"]["office"]["state"] == "ok"
        assert report["gateways"]["office"]["type"] == "smsmobileapi"
        assert report["chats"]["support"]["state"] == "ok"
        queues = {(q["queue"], q["name"]): q for q in report["queues"]}
        assert set(queues) == {
            ("chat_posts", "support"),
            ("outbound_sms", "office"),
            ("status_jobs", "support"),
        }
        assert all(q["depth"] == 0 and q["oldest_seconds"] is None for q in queues.values())
        duties = {d["duty"]: d for d in report["duties"]}
        assert set(duties) == DUTIES
        assert all(
            d["holder"] == instance and d["here"] and d["seconds_left"] > 0 for d in duties.values()
        )
        assert report["errors"] == []

        text = await cli("status", "--config", config)
        assert text.code == 0, text
        lines = text.out.splitlines()
        assert lines[0] == "smsbridge status: OK"
        assert any(line.split()[:2] == ["office", "ok"] for line in lines)
        assert any(line.split()[:2] == ["support", "ok"] for line in lines)
        assert any(line.split()[:4] == ["outbound", "SMS", "office", "0"] for line in lines)
        assert any(line.startswith("  send:office") and "(this instance)" in line for line in lines)

        # The command took nothing from the bridge: it still stores and posts.
        await running.sms(gateway, BOB, "after status")
        await telegram.wait_for(lambda: any("after status" in t for t in posted(telegram)), 10)

        # A refused SMS is among the last errors.
        gateway.fail_next(
            "/sendsms/",
            status=200,
            body={"result": {"error": 1, "sent": "0", "message": "No credit"}},
        )
        sent = await cli(
            "send", "--config", config, "--to", ALICE, "--text", "refused", "--wait", "20"
        )
        assert sent.code == 1, sent
        assert "failed" in sent.out and "No credit" in sent.out
        report = (await cli("status", "--config", config, "--json")).json()
        [error] = report["errors"]
        assert error["what"] == "sms" and error["name"] == "office" and error["state"] == "failed"
        assert "No credit" in error["error"]

        # A gateway answering 500: the SMS waits in the outbox, retried; its queue shows it.
        gateway.fail_next("/sendsms/", status=500, count=1000)
        waiting = await cli("send", "-c", config, "--to", BOB, "--text", "stuck", "--wait", "0")
        assert waiting.code == 3, waiting
        deadline = time.monotonic() + 15
        while True:
            result = await cli("status", "--config", config, "--json")
            report = result.json()
            if report["errors"][0]["state"] == "retrying" or time.monotonic() > deadline:
                break
        assert result.code == 0, result  # a retry is no outage
        assert report["errors"][0]["what"] == "sms" and report["errors"][0]["attempts"] >= 1
        queues = {(q["queue"], q["name"]): q for q in report["queues"]}
        assert queues[("outbound_sms", "office")]["depth"] == 1
        # The command's SMS come from no chat: no status job waits for a chat called "cli".
        assert set(queues) == {
            ("chat_posts", "support"),
            ("outbound_sms", "office"),
            ("status_jobs", "support"),
        }
        assert queues[("outbound_sms", "office")]["oldest_seconds"] > 0
        assert [e["state"] for e in report["errors"]] == ["retrying", "failed"]

        await running.process.terminate()
        gone = await cli("status", "--config", config, "--json", "--url", running.process.url)
        assert gone.code == 1, gone
        report = gone.json()
        assert report["ok"] is False and report["bridge"]["state"] == "unreachable"
        assert report["problems"][0].startswith("bridge: no answer from")
        assert report["store"]["state"] == "ok"  # the store is still read
        assert report["gateways"]["office"]["state"] == "unknown"
        down = await cli("status", "--config", config)
        assert down.code == 1 and down.out.startswith("smsbridge status: DOWN")


async def test_status_and_send_with_two_instances_on_postgresql(
    tmp_path: Path, pg_url: str, gateway: FakeSmsMobileApi, telegram: FakeTelegram
) -> None:
    data = config_dict(pg_url, gateway, telegram)
    data["store"]["lease_ttl"] = 3.0
    pair = [Running(tmp_path, data, "a"), Running(tmp_path, data, "b")]
    try:
        await asyncio.gather(*(r.start() for r in pair))
        instances = {(await r.process.health())["instance"] for r in pair}
        deadline = time.monotonic() + 15
        while True:  # both have claimed: every duty is held, by one or the other
            result = await cli("status", "--config", str(pair[1].config), "--json")
            report = result.json()
            assert "duties" in report, report["store"]
            duties = {d["duty"]: d for d in report["duties"]}
            if set(duties) == DUTIES or time.monotonic() > deadline:
                break
        assert result.code == 0, result
        assert report["store"] == {"state": "ok", "kind": "postgresql"}
        assert set(duties) == DUTIES
        assert {d["holder"] for d in duties.values()} <= instances
        here = report["bridge"]["instance"]
        assert all(d["here"] == (d["holder"] == here) for d in duties.values())
        for r in pair:
            health = await r.process.health()
            for name, state in health["duties"].items():
                assert (state["state"] == "active") == (
                    duties[name]["holder"] == health["instance"]
                )

        # Sent by whichever instance holds send:office, once, woken by NOTIFY.
        task = asyncio.create_task(
            cli("send", "-c", str(pair[0].config), "--to", ALICE, "--text", "pg", "--wait", "0")
        )
        await gateway.wait_for(lambda: any(s.message == "pg" for s in gateway.sent), 10)
        assert (await task).code in (0, 3)
        await asyncio.sleep(2.5)
        assert [s.message for s in gateway.sent].count("pg") == 1

        await pair[0].process.terminate()
        down = await cli("status", "--config", str(pair[0].config))
        assert down.code == 1 and "unreachable" in down.out
    finally:
        for r in pair:
            r.process.kill()
            print(r.process.tail())


def test_status_shows_a_gateways_watchdog_whatever_its_shape() -> None:
    assert watchdog({"state": "incident", "incidents": {"battery_low": 1, "offline": 0}}) == (
        "incident (battery_low)"
    )
    assert watchdog({"healthy": True}) == "ok"
    assert watchdog("silent") == "silent"
    report: dict[str, Any] = {
        "ok": True,
        "problems": [],
        "bridge": {"state": "ok", "url": "http://x", "instance": "h:1", "uptime": 75},
        "store": {"state": "ok", "kind": "sqlite"},
        "gateways": {
            "office": {"type": "smsmobileapi", "state": "ok", "watchdog": {"state": "ok"}}
        },
        "chats": {},
    }
    assert "office               ok         smsmobileapi, watchdog: ok" in render(report)


async def test_a_readers_database_refuses_writes_and_never_creates_or_migrates(
    store_url: str, tmp_path: Path
) -> None:
    url = StoreConfig(url=store_url).async_url
    with pytest.raises(StoreNotReady, match="no store at"):
        Database(f"sqlite+aiosqlite:///{tmp_path / 'none.db'}", lock=False)
    assert not (tmp_path / "none.db").exists()
    if not store_url.startswith("sqlite"):
        empty = Database(url, lock=False, read_only=True)
        with pytest.raises(StoreNotReady, match="no smsbridge tables"):
            await empty.check_schema()
        await empty.dispose()
    owner = await SqlStore.open(url)  # the bridge: creates, migrates, holds the SQLite file
    try:
        reader = Database(url, lock=False, read_only=True)
        try:
            await reader.check_schema()
            with pytest.raises(RuntimeError, match="only the store's owner"):
                await reader.migrate()
            with pytest.raises(sa.exc.DBAPIError, match=r"(?i)read.?only"):
                async with reader.write() as conn:
                    await conn.execute(leases.delete())
        finally:
            await reader.dispose()
    finally:
        await owner.close()
