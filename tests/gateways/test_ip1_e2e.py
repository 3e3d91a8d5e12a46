"""iP1 end to end: SMS in by callback, a topic, the reply out as a batch, its report back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import AGENT, CUSTOMER, GROUP, Harness, telegram_section
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.models import Status
from bridge.testing.fake_harness import bridge_config, running_bridge
from bridge.testing.server import serve
from connectors.chat.telegram.fake import FakeTelegram
from connectors.sms.ip1.fake import NUMBER, FakeIp1

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


def _section(ip1: FakeIp1) -> dict[str, Any]:
    return ip1.section(
        "ip1",
        sender="Salon",
        webhook_token=TOKEN,
        status_poll_interval=3600,  # the delivery report must do it, not a poll
    )


async def test_sms_to_topic_reply_to_batch_report_to_reaction(
    tmp_path: Path, ip1: FakeIp1, telegram: FakeTelegram, proxy: tuple[Proxy, str]
) -> None:
    front, public_url = proxy
    # A public URL would switch Telegram to webhooks; the fake is polled instead.
    chat = telegram_section(telegram) | {"transport": "polling"}
    config = bridge_config(tmp_path, _section(ip1), chat, public_url=public_url)
    async with running_bridge(config) as bridge:
        front.target = f"http://127.0.0.1:{bridge.port}"
        harness = Harness(bridge, ip1, telegram)
        await _round_trip(harness, f"{public_url}/webhooks/sms/ip1")


async def _round_trip(harness: Harness[FakeIp1], hook: str) -> None:
    bridge, ip1, telegram = harness.bridge, harness.gateway, harness.telegram
    # The customer writes; iP1 calls the portal's "incoming SMS" URL (a wrong token is refused).
    message = ip1.receive_sms(CUSTOMER.removeprefix("+"), "Is my order ready?")
    assert (await ip1.deliver_incoming(f"{hook}/not-the-token-at-all", message)).status == 403
    assert (await ip1.deliver_incoming(f"{hook}/{TOKEN}", message)).status == 200
    await telegram.wait_for(lambda: harness.posts() == ["Is my order ready?"])
    [topic] = harness.topics()
    # iP1 retries a callback it thinks failed: the same SMS is not posted twice.
    assert (await ip1.deliver_incoming(f"{hook}/{TOKEN}", message)).status == 200
    await harness.idle()
    assert harness.posts(topic.thread_id) == ["Is my order ready?"]

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
    row = await bridge.store.outbound.by_origin("support", str(reply["message_id"]))
    assert row is not None
    assert (row.status, row.raw_status, row.provider_id) == (
        Status.DELIVERED,
        "201 DeliveredToHandset",
        ip1.batches[0].id,
    )
    await harness.idle()
    assert telegram.reaction(GROUP, reply["message_id"]) == ["👍"]
    assert telegram.violations == []
