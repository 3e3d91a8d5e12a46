"""iP1 end to end: SMS in by callback, a topic, the reply out as a batch, its report back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import AGENT, CUSTOMER, GROUP, telegram_section
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.app import Bridge
from bridge.config import parse_config
from bridge.models import Status
from bridge.testing.fake_ip1 import NUMBER, FakeIp1
from bridge.testing.fake_telegram import FakeTelegram
from bridge.testing.server import serve

TOKEN = "ip1-e2e-token-0123456789"


class Proxy:
    """The reverse proxy in front of the bridge: ``server.public_url`` must be known before the
    bridge starts on port 0, so it points here and requests are passed on once it runs."""

    def __init__(self) -> None:
        self.target: str | None = None
        self.app = Starlette(routes=[Route("/{path:path}", self._pass, methods=["GET", "POST"])])

    async def _pass(self, request: Request) -> Response:
        assert self.target is not None, "the bridge is not running yet"
        async with httpx.AsyncClient(trust_env=False) as client:
            answer = await client.request(
                request.method,
                f"{self.target}{request.url.path}",
                content=await request.body(),
                headers={"content-type": request.headers.get("content-type", "")},
            )
        return Response(answer.content, answer.status_code, media_type="application/json")


@pytest.fixture
async def ip1() -> AsyncIterator[FakeIp1]:
    async with FakeIp1() as fake:
        yield fake


@pytest.fixture
async def proxy() -> AsyncIterator[tuple[Proxy, str]]:
    front = Proxy()
    async with serve(front.app) as url:
        yield front, url


def _config(tmp_path: Path, ip1: FakeIp1, telegram: FakeTelegram, public_url: str) -> Any:
    gateway = {
        "name": "ip1",
        "type": "ip1",
        "api_key": ip1.api_key,
        "sender": "Salon",
        "webhook_token": TOKEN,
        "base_url": ip1.base_url,
        "status_poll_interval": 3600,  # the delivery report must do it, not a poll
    }
    return parse_config(
        {
            "store": {"url": f"sqlite:///{tmp_path / 'x.db'}"},
            "server": {"host": "127.0.0.1", "port": 0, "public_url": public_url},
            "gateways": [gateway],
            # A public URL would switch Telegram to webhooks; the fake is polled instead.
            "chats": [telegram_section(telegram) | {"transport": "polling"}],
            "routes": [{"gateway": "ip1", "chat": "support"}],
        },
        environ={},
    )


async def test_sms_to_topic_reply_to_batch_report_to_reaction(
    tmp_path: Path, ip1: FakeIp1, telegram: FakeTelegram, proxy: tuple[Proxy, str]
) -> None:
    front, public_url = proxy
    bridge = Bridge(_config(tmp_path, ip1, telegram, public_url))
    await bridge.start()
    try:
        front.target = f"http://127.0.0.1:{bridge.port}"
        await _round_trip(bridge, ip1, telegram, f"{public_url}/webhooks/sms/ip1")
    finally:
        await bridge.stop()


async def _idle(bridge: Bridge, seconds: float = 5.0) -> None:
    """Until every chat job is done: a post lands a moment before its mapping is committed."""
    assert bridge.store is not None
    deadline = asyncio.get_running_loop().time() + seconds
    while (await bridge.store.backlog())["chat_jobs"]:
        assert asyncio.get_running_loop().time() < deadline, "the bridge never went idle"
        await asyncio.sleep(0.01)


async def _round_trip(bridge: Bridge, ip1: FakeIp1, telegram: FakeTelegram, hook: str) -> None:
    # The customer writes; iP1 calls the portal's "incoming SMS" URL (a wrong token is refused).
    message = ip1.receive_sms(CUSTOMER.removeprefix("+"), "Is my order ready?")
    assert (await ip1.deliver_incoming(f"{hook}/not-the-token-at-all", message)).status == 403
    assert (await ip1.deliver_incoming(f"{hook}/{TOKEN}", message)).status == 200
    await telegram.wait_for(lambda: _posts(telegram) == ["Is my order ready?"])
    [topic] = [t for t in telegram.topics(GROUP) if not t.deleted]
    # iP1 retries a callback it thinks failed: the same SMS is not posted twice.
    assert (await ip1.deliver_incoming(f"{hook}/{TOKEN}", message)).status == 200
    await _idle(bridge)
    assert _posts(telegram, topic.thread_id) == ["Is my order ready?"]

    reply = telegram.user_message(GROUP, AGENT, "Yes, come by!", thread_id=topic.thread_id)
    await ip1.wait_for(lambda: len(ip1.batches) == 1)
    request = ip1.batches[0].request
    assert request["recipients"] == [CUSTOMER.removeprefix("+")]
    assert request["body"] == "Yes, come by!"
    assert request["sender"] == NUMBER  # the number the customer wrote to, not "Salon"
    assert request["deliveryReportUrl"] == f"{hook}/{TOKEN}"
    assert request["reference"].startswith("smsbridge-")
    await telegram.wait_for(lambda: telegram.reaction(GROUP, reply["message_id"]) == ["✍"])

    # iP1 reports the handset receipt to deliveryReportUrl, then a late carrier status.
    [sent] = ip1.sent
    delivered = await ip1.report(sent, 201)
    assert delivered is not None and delivered.status == 200
    await telegram.wait_for(lambda: telegram.reaction(GROUP, reply["message_id"]) == ["👍"])
    late = await ip1.report(sent, 112)
    assert late is not None and late.status == 200
    assert bridge.store is not None
    row = await bridge.store.outbox_by_origin("support", str(reply["message_id"]))
    assert row is not None
    assert (row.status, row.raw_status, row.provider_id) == (
        Status.DELIVERED,
        "201 DeliveredToHandset",
        ip1.batches[0].id,
    )
    await _idle(bridge)
    assert telegram.reaction(GROUP, reply["message_id"]) == ["👍"]
    assert telegram.violations == []


def _posts(telegram: FakeTelegram, thread_id: int | None = None) -> list[str]:
    kwargs = {} if thread_id is None else {"thread_id": thread_id}
    return [m.get("text") or "" for m in telegram.sent_messages(GROUP, **kwargs)]
