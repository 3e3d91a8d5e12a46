"""Intake: inbound webhooks accepted durably per second (SQLite), against a bare endpoint."""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

from bench.common import (
    GROUP,
    blast,
    bridge_config,
    bridge_process,
    free_port,
    http_post,
    plain_webhook,
    wait_http,
    workdir,
)
from connectors.chat.telegram.fake import FakeTelegram
from connectors.sms.smsmobileapi.fake import FakeSmsMobileApi
from connectors.sms.smsmobileapi.fake_webhooks import sign


def plain_requests(count: int, text: str = "bench message") -> list[bytes]:
    return [plain_webhook(f"+1555{index % 500:07d}", f"{text} {index}") for index in range(count)]


def signed_requests(count: int, secret: str, text: str = "signed bench message") -> list[bytes]:
    requests = []
    stamp = int(time.time())
    for index in range(count):
        event = str(uuid.uuid4())
        body = json.dumps(
            {
                "id": event,
                "type": "sms.received",
                "api_version": "2026-09-22",
                "created_at": "2026-11-23T10:00:00Z",
                "occurred_at": "2026-11-23T10:00:00Z",
                "data": {
                    "guid": uuid.uuid4().hex,
                    "from": f"+1555{index % 500:07d}",
                    "message": f"{text} {index}",
                    "received_at": "2026-11-23T10:00:00Z",
                    "alias": None,
                    "device_id": "office-phone-1",
                },
            }
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "X-SMSMobileAPI-Event": "sms.received",
            "X-SMSMobileAPI-Event-ID": event,
            "X-SMSMobileAPI-Timestamp": str(stamp),
            "X-SMSMobileAPI-Signature": sign(secret, stamp, body),
            "Idempotency-Key": event,
        }
        requests.append(http_post("/webhooks/sms/office", body, headers))
    return requests


async def measure(port: int, requests: list[bytes], connections: int) -> tuple[float, int]:
    await blast(port, requests[:500], connections)  # warm up: imports, caches, connections
    seconds, statuses = await blast(port, requests[500:], connections)
    good = sum(1 for s in statuses if 200 <= s < 300)
    if good != len(statuses):
        raise SystemExit(f"{len(statuses) - good} requests were not accepted: {set(statuses)}")
    return len(statuses) / seconds, len(statuses)


def many_routes(count: int) -> list[dict[str, object]]:
    """``count`` routes, the last a catch-all, the others conditions no bench SMS meets: every
    SMS is weighed against all of them (the worst case for intake)."""
    routes: list[dict[str, object]] = []
    for index in range(count - 1):
        kind = index % 4
        if kind == 0:
            match: dict[str, object] = {"from": [f"BANK{index}", f"+3246{index:07d}*"]}
        elif kind == 1:
            match = {"text": [f"verification {index}", f"re:(?i)\\bcode {index}\\b"]}
        elif kind == 2:
            match = {"text": [f"CRITICAL {index}"], "hours": "Mon-Fri 08:00-18:00"}
        else:
            match = {"from": [f"re:^ALERT{index}"], "to": [f"phone-{index}"]}
        routes.append(
            {"name": f"rule-{index}", "match": match, "chat": "support", "thread": f"T{index}"}
        )
    routes.append({"name": "catch-all", "gateway": "office", "chat": "support"})
    return routes


async def run_bridge(
    tmp: Path, count: int, connections: int, routes: list[dict[str, object]] | None, label: str
) -> tuple[float, float]:
    """(plain, signed) webhooks stored per second by one bridge with ``routes``."""
    async with FakeSmsMobileApi() as gateway, FakeTelegram() as telegram:
        telegram.add_forum(GROUP)
        port = free_port()
        db = tmp / f"bench-{label}.db"
        config = bridge_config(db, port, gateway, telegram, fast_pacing=False)
        if routes is not None:
            config["routes"] = routes
        async with bridge_process(config, tmp):
            plain_rate, plain_n = await measure(port, plain_requests(count + 500), connections)
            signed_rate, signed_n = await measure(
                port, signed_requests(count + 500, gateway.webhook_secret), connections
            )
        with sqlite3.connect(db) as conn:
            stored = conn.execute("SELECT count(*) FROM inbound").fetchone()[0]
            jobs = conn.execute("SELECT count(*) FROM chat_jobs").fetchone()[0]
    expected = plain_n + signed_n + 1000
    print(f"  [{label}] stored after the run: {stored} SMS (expected {expected}), {jobs} posts")
    if stored != expected:
        raise SystemExit("some accepted webhooks were not stored")
    return plain_rate, signed_rate


async def main(count: int, connections: int, rules: int) -> None:
    with workdir() as tmp:
        bare_port = free_port()
        bare = subprocess.Popen([sys.executable, "-m", "bench.bare_app", str(bare_port)])
        try:
            await wait_http(f"http://127.0.0.1:{bare_port}/", bare)
            bare_rate, _ = await measure(bare_port, plain_requests(count + 500), connections)
        finally:
            bare.terminate()
            bare.wait()
        plain_rate, signed_rate = await run_bridge(tmp, count, connections, None, "no rules")
        ruled = None
        if rules:
            # Interleaved, best of two each: this machine's speed drifts by more than the 10%
            # being measured (the bare endpoint alone varies that much from run to run).
            first = await run_bridge(tmp, count, connections, many_routes(rules), "routes 1")
            again = await run_bridge(tmp, count, connections, None, "no rules 2")
            second = await run_bridge(tmp, count, connections, many_routes(rules), "routes 2")
            plain_rate, signed_rate = max(plain_rate, again[0]), max(signed_rate, again[1])
            ruled = (max(first[0], second[0]), max(first[1], second[1]))
    print(f"intake benchmark: {count} webhooks per kind, {connections} connections, SQLite")
    print(f"  bare Starlette endpoint (answers only):   {bare_rate:8.0f} req/s")
    print(
        f"  bridge, plain webhook (stored durably):   {plain_rate:8.0f} req/s"
        f"   ratio to bare {plain_rate / bare_rate:.2f}"
    )
    print(
        f"  bridge, signed Webhook V2 (HMAC checked): {signed_rate:8.0f} req/s"
        f"   ratio to bare {signed_rate / bare_rate:.2f}"
    )
    if ruled is not None:
        plain_ratio, signed_ratio = ruled[0] / plain_rate, ruled[1] / signed_rate
        print(
            f"  with {rules} routes, plain:                {ruled[0]:8.0f} req/s"
            f"   ratio to no rules {plain_ratio:.2f}"
        )
        print(
            f"  with {rules} routes, signed:               {ruled[1]:8.0f} req/s"
            f"   ratio to no rules {signed_ratio:.2f}"
        )
        if min(plain_ratio, signed_ratio) < 0.9:
            raise SystemExit("rules cost intake more than the 10% allowed")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--rules", type=int, default=0, help="also run with this many routes (e.g. 50)"
    )
    args = parser.parse_args()
    asyncio.run(main(args.count, args.connections, args.rules))
