"""/healthz says what is down (gateway polls, Telegram) and recovers; /metrics counts traffic."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from conftest import Harness

from connectors.chat.telegram.fake import FakeTelegram
from connectors.sms.smsmobileapi.fake import FakeSmsMobileApi


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0, trust_env=False) as http:
        yield http


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:  # noqa: ASYNC109
    """``wait_for`` for conditions that need a request to observe."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.02)


class Health:
    """The last /healthz answer, refreshed by ``until(health.is_(...))``."""

    def __init__(self, client: httpx.AsyncClient, harness: Harness) -> None:
        self.client = client
        self.url = f"{harness.base}/healthz"
        self.status = 0
        self.body: dict[str, Any] = {}

    async def get(self) -> dict[str, Any]:
        response = await self.client.get(self.url)
        assert response.headers["content-type"].startswith("application/json")
        self.status, self.body = response.status_code, response.json()
        return self.body

    def is_(self, status: int, **states: str) -> Callable[[], Awaitable[bool]]:
        """A check: HTTP ``status`` and e.g. ``gateways="down"`` for office / support."""

        async def check() -> bool:
            body = await self.get()
            names = {"gateways": "office", "chats": "support"}
            return self.status == status and all(
                body[section][names[section]]["state"] == state for section, state in states.items()
            )

        return check


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` whose labels include ``labels``; None if absent."""
    for line in text.splitlines():
        match = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if match is None or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    return None


async def test_healthz_reports_every_part_ok(harness: Harness, client: httpx.AsyncClient) -> None:
    health = Health(client, harness)
    await until(health.is_(200, chats="ok"))
    body = health.body
    assert body["status"] == "ok"
    assert body["store"]["state"] == "ok"
    assert set(body["store"]["backlog"]) == {"chat_jobs", "outbox"}
    assert body["scheduler"] == {"state": "ok"}
    assert body["workers"] == {
        "send:office": {"state": "ok", "last_error": None},
        "chat:support": {"state": "ok", "last_error": None},
    }
    # A lone instance owns every duty of the deployment.
    assert body["duties"] == {
        "chat:support": {"state": "active"},
        "gateway:office": {"state": "active"},
        "housekeeping": {"state": "active"},
        "send:office": {"state": "active"},
    }
    assert body["instance"] == harness.bridge.instance
    support = body["chats"]["support"]
    assert support["state"] == "ok" and support["last_error"] is None
    assert support["transport"] == "polling" and support["threads"] is True
    office = body["gateways"]["office"]
    assert office["state"] == "ok" and office["receive"] == "webhook"
    assert office["failures_in_a_row"] == 0 and office["last_error"] is None
    assert body["uptime"] >= 0


async def test_failing_gateway_polls_make_healthz_503_until_it_recovers(
    start_bridge: Callable[..., Any], gateway: FakeSmsMobileApi, client: httpx.AsyncClient
) -> None:
    gateway.fail_next("/getsms/", status=500, count=50)
    harness: Harness = await start_bridge(gateway={"receive": "poll"})
    health = Health(client, harness)
    await until(health.is_(503, gateways="down"))
    office = health.body["gateways"]["office"]
    assert office["failures_in_a_row"] >= 3
    assert "HTTP 500" in office["last_error"]
    assert health.body["status"] == "down"
    failed = [r for r in gateway.requests if r.path == "/getsms/" and r.status == 500]
    assert len(failed) >= 3  # not down on the first failure

    gateway.reset()  # the gateway recovers: no more injected 500s
    await until(health.is_(200, gateways="ok"))
    office = health.body["gateways"]["office"]
    assert office["failures_in_a_row"] == 0 and office["last_error"] is None
    assert office["last_ok"] is not None
    assert health.body["status"] == "ok"
    # and it polls for real again
    gateway.receive_sms("+15557654321", "back online")
    await harness.telegram.wait_for(lambda: harness.posts() == ["back online"])


async def test_a_single_failed_poll_is_degraded_not_down(
    start_bridge: Callable[..., Any], gateway: FakeSmsMobileApi, client: httpx.AsyncClient
) -> None:
    # Slow polls (2 s) so the state after exactly one failure can be read.
    gateway.fail_next("/getsms/", status=500, count=1)
    harness: Harness = await start_bridge(gateway={"receive": "poll", "poll_interval": 2})
    await gateway.wait_for(lambda: any(r.status == 500 for r in gateway.requests))
    health = Health(client, harness)

    async def degraded() -> bool:
        await health.get()
        return health.body["gateways"]["office"]["state"] == "degraded"

    await until(degraded, timeout=1.5)
    assert health.status == 200  # one hiccup is not an outage
    assert health.body["gateways"]["office"]["failures_in_a_row"] == 1


@pytest.mark.parametrize("method", ["getMe", "getUpdates"])
async def test_telegram_refusing_the_token_makes_healthz_503(
    start_bridge: Callable[..., Any],
    telegram: FakeTelegram,
    client: httpx.AsyncClient,
    method: str,
) -> None:
    telegram.fail_next(method, status=401, description="Unauthorized", count=50)
    harness: Harness = await start_bridge()
    health = Health(client, harness)
    await until(health.is_(503, chats="down"))
    support = health.body["chats"]["support"]
    assert method in support["last_error"]
    assert health.body["status"] == "down"
    assert health.body["store"]["state"] == "ok"  # only Telegram is at fault


async def test_telegram_going_down_while_running_makes_healthz_503(
    harness: Harness, telegram: FakeTelegram, client: httpx.AsyncClient
) -> None:
    health = Health(client, harness)
    await until(health.is_(200, chats="ok"))
    telegram.fail_next("getUpdates", status=401, description="Unauthorized", count=50)
    await until(health.is_(503, chats="down"))
    assert "getUpdates" in health.body["chats"]["support"]["last_error"]


async def test_metrics_count_inbound_sms_and_rejected_webhooks(
    harness: Harness, client: httpx.AsyncClient
) -> None:
    async def scrape() -> str:
        response = await client.get(f"{harness.base}/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        return response.text

    before = await scrape()
    assert "# TYPE smsbridge_inbound_sms_total counter" in before
    assert metric(before, "smsbridge_inbound_sms_total", gateway="office") is None

    await harness.sms("count me")
    await harness.telegram.wait_for(lambda: harness.posts() == ["count me"])
    after_sms = await scrape()
    assert (
        metric(
            after_sms,
            "smsbridge_inbound_sms_total",
            gateway="office",
            source="webhook",
            result="new",
        )
        == 1
    )
    assert metric(after_sms, "smsbridge_webhook_rejected_total") is None

    wrong = await client.post(f"{harness.base}/webhooks/sms/office/wrong-token", content=b"{}")
    assert wrong.status_code == 403
    unsigned = await client.post(harness.signed_hook, content=b"{}")
    assert unsigned.status_code == 401
    after_rejects = await scrape()
    rejected = "smsbridge_webhook_rejected_total"
    assert metric(after_rejects, rejected, endpoint="sms", status="403") == 1
    assert metric(after_rejects, rejected, endpoint="sms", status="401") == 1


async def take_away(harness: Harness, duty: str) -> None:
    """Another instance owns ``duty`` from now on (as after a takeover)."""
    import sqlalchemy as sa

    from bridge.store.schema import leases

    assert harness.bridge.store is not None
    async with harness.bridge.store.db.write() as conn:
        await conn.execute(
            sa.update(leases)
            .where(leases.c.name == duty)
            .values(holder="another-instance", expires_at=time.time() + 3600)
        )


async def test_a_gateway_duty_taken_over_while_failing_is_a_healthy_standby(
    start_bridge: Callable[..., Any], gateway: FakeSmsMobileApi, client: httpx.AsyncClient
) -> None:
    gateway.fail_next("/getsms/", status=500, count=1000)
    harness: Harness = await start_bridge(gateway={"receive": "poll"})
    health = Health(client, harness)
    await until(health.is_(503, gateways="down"))
    await take_away(harness, "gateway:office")
    # Polled by another instance now: what this one last saw of the gateway is stale.
    await until(health.is_(200, gateways="ok"), timeout=10.0)
    assert health.body["duties"]["gateway:office"] == {"state": "standby"}


async def test_a_chat_duty_taken_over_while_failing_is_a_healthy_standby(
    harness: Harness, telegram: FakeTelegram, client: httpx.AsyncClient
) -> None:
    health = Health(client, harness)
    await until(health.is_(200, chats="ok"))
    telegram.fail_next("getUpdates", status=502, description="Bad Gateway", count=1000)
    await until(health.is_(503, chats="down"))
    await take_away(harness, "chat:support")
    await until(health.is_(200, chats="ok"), timeout=10.0)
    assert health.body["chats"]["support"]["consumer"] == "standby"
