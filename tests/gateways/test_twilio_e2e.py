"""Twilio through the real bridge: SMS in -> topic -> reply -> SMS out -> delivery reaction."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import AGENT, GROUP, telegram_section

from bridge.app import Bridge
from bridge.config import parse_config
from bridge.testing.fake_telegram import FakeTelegram
from bridge.testing.fake_twilio import NUMBER, FakeTwilio

CUSTOMER = "+14155552345"
TOKEN = "twilio-hook-token-0123456789"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio() as fake:
        yield fake


def config_dict(tmp_path: Path, twilio: FakeTwilio, telegram: FakeTelegram, **gw: Any) -> Any:
    section = {
        "name": "tw",
        "type": "twilio",
        "account_sid": twilio.account_sid,
        "auth_token": twilio.auth_token,
        "from_number": NUMBER,
        "base_url": twilio.base_url,
        "poll_interval": 0.2,
        "status_poll_interval": 3600,
        **gw,
    }
    return {
        "store": {"url": f"sqlite:///{tmp_path / 'x.db'}"},
        "server": {"host": "127.0.0.1", "port": 0},
        "gateways": [section],
        "chats": [telegram_section(telegram)],
        "routes": [{"gateway": "tw", "chat": "support"}],
    }


@pytest.fixture
async def bridges() -> AsyncIterator[list[Bridge]]:
    running: list[Bridge] = []
    yield running
    for bridge in reversed(running):
        await bridge.stop()


async def start(data: dict[str, Any], running: list[Bridge]) -> Bridge:
    bridge = Bridge(parse_config(data, environ={}))
    await bridge.start()
    running.append(bridge)
    return bridge


async def idle(bridge: Bridge, seconds: float = 5.0) -> None:
    """Until the bridge has nothing left to post (as ``conftest.Harness.idle``)."""
    assert bridge.store is not None
    deadline = asyncio.get_running_loop().time() + seconds
    while (await bridge.store.backlog())["chat_jobs"]:
        assert asyncio.get_running_loop().time() < deadline, "the bridge never went idle"
        await asyncio.sleep(0.01)


def texts(telegram: FakeTelegram, thread: int | None = None) -> list[str]:
    kwargs = {} if thread is None else {"thread_id": thread}
    return [m.get("text") or "" for m in telegram.sent_messages(GROUP, **kwargs)]


async def test_sms_by_webhook_reply_and_delivery_by_status_callback(
    tmp_path: Path, twilio: FakeTwilio, telegram: FakeTelegram, bridges: list[Bridge]
) -> None:
    port = free_port()
    data = config_dict(tmp_path, twilio, telegram, receive="webhook", webhook_token=TOKEN)
    data["server"] = {"host": "127.0.0.1", "port": port, "public_url": f"http://127.0.0.1:{port}"}
    bridge = await start(data, bridges)
    await telegram.wait_for(lambda: telegram.webhook is not None)
    hook = f"http://127.0.0.1:{port}/webhooks/sms/tw/{TOKEN}"

    # An SMS reaches Twilio, Twilio calls the bridge, and is answered with empty TwiML.
    incoming = twilio.receive_sms(CUSTOMER, "Is my order ready?")
    answer = await twilio.deliver_inbound(hook, incoming)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/xml")
    assert answer.text == '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
    await telegram.wait_for(lambda: "Is my order ready?" in texts(telegram))
    # Twilio retries when it thinks we failed: the same MessageSid is stored once.
    assert (await twilio.deliver_inbound(hook, incoming)).status_code == 200
    forged = await twilio.deliver_inbound(hook, incoming, auth_token="not-the-auth-token")
    assert forged.status_code == 401
    await idle(bridge)
    [topic] = [t for t in telegram.topics(GROUP) if not t.deleted]
    assert texts(telegram) == ["Is my order ready?"]

    # The agent answers in the topic; it leaves from the number the customer wrote to.
    reply = telegram.user_message(GROUP, AGENT, "Yes, come by at 5", thread_id=topic.thread_id)
    await twilio.wait_for(lambda: len(twilio.sent) == 1)
    [sent] = twilio.sent
    assert (sent.to, sent.from_, sent.body) == (CUSTOMER, NUMBER, "Yes, come by at 5")
    assert sent.status_callback == hook
    await telegram.wait_for(lambda: telegram.reaction(GROUP, reply["message_id"]) == ["✍"])

    # Twilio's callbacks move the reaction on; a late "sent" after "delivered" changes nothing.
    assert (await twilio.advance(sent.sid, "sent")).status_code == 200  # type: ignore[union-attr]
    await telegram.wait_for(lambda: telegram.reaction(GROUP, reply["message_id"]) == ["👌"])
    await twilio.advance(sent.sid, "delivered")
    await telegram.wait_for(lambda: telegram.reaction(GROUP, reply["message_id"]) == ["👍"])
    late = await twilio.advance(sent.sid, "sent")
    assert late is not None and late.status_code == 200
    await idle(bridge)
    assert telegram.reaction(GROUP, reply["message_id"]) == ["👍"]
    assert len(twilio.sent) == 1 and telegram.violations == []


async def test_sms_by_polling_and_delivery_by_status_polling(
    tmp_path: Path, twilio: FakeTwilio, telegram: FakeTelegram, bridges: list[Bridge]
) -> None:
    data = config_dict(tmp_path, twilio, telegram, receive="poll", status_poll_interval=0.2)
    await start(data, bridges)
    twilio.receive_sms(CUSTOMER, "Anyone there?")
    await telegram.wait_for(lambda: "Anyone there?" in texts(telegram))
    [topic] = [t for t in telegram.topics(GROUP) if not t.deleted]
    reply = telegram.user_message(GROUP, AGENT, "Here!", thread_id=topic.thread_id)
    await twilio.wait_for(lambda: len(twilio.sent) == 1)
    [sent] = twilio.sent
    assert sent.status_callback is None  # no public URL: Twilio cannot call back
    twilio.set_status(sent.sid, "sent")
    await telegram.wait_for(lambda: telegram.reaction(GROUP, reply["message_id"]) == ["👌"])
    twilio.set_status(sent.sid, "delivered")
    await telegram.wait_for(lambda: telegram.reaction(GROUP, reply["message_id"]) == ["👍"])
    assert any(r.path.endswith(f"/Messages/{sent.sid}.json") for r in twilio.requests)

    second = telegram.user_message(GROUP, AGENT, "Hello?", thread_id=topic.thread_id)
    await twilio.wait_for(lambda: len(twilio.sent) == 2)
    twilio.set_status(twilio.sent[1].sid, "undelivered", error_code=30003)
    await telegram.wait_for(lambda: telegram.reaction(GROUP, second["message_id"]) == ["💔"])
    await telegram.wait_for(
        lambda: any(
            "Unreachable destination handset" in t for t in texts(telegram, topic.thread_id)
        )
    )
