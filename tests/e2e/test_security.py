"""Secrets stay out of logs and endpoints; only allowed people send SMS; no echo loops."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from conftest import AGENT, CUSTOMER, GROUP, HOOK_TOKEN, STRANGER, Harness

from bridge import logs
from bridge.store.schema import outbox
from connectors.chat.telegram.fake import FakeTelegram
from connectors.chat.telegram.fake_records import thread_of
from connectors.sms.smsmobileapi.fake import FakeSmsMobileApi

REFUSAL = "not allowed"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0, trust_env=False) as http:
        yield http


def secrets_of(gateway: FakeSmsMobileApi, telegram: FakeTelegram) -> dict[str, str]:
    return {
        "gateway api_key": gateway.api_key,
        "webhook token": HOOK_TOKEN,
        "webhook secret": gateway.webhook_secret,
        "bot token": telegram.token,
        "bot token's secret part": telegram.token.partition(":")[2],
    }


def leaks(text: str, secrets: dict[str, str]) -> list[str]:
    return [name for name, value in secrets.items() if value in text]


async def outbox_rows(harness: Harness) -> int:
    assert harness.bridge.store is not None
    async with harness.bridge.store.db.read() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(outbox))).scalar() or 0


async def open_topic(harness: Harness, text: str = "hi there") -> int:
    """An SMS in, so the customer's number has a topic; returns its thread id."""
    await harness.sms(text)
    await harness.telegram.wait_for(lambda: len(harness.posts()) == 1)
    await harness.idle()
    [topic] = harness.topics()
    return topic.thread_id


def replies_to(harness: Harness, message_id: int) -> list[str]:
    return [
        m.get("text", "")
        for m in harness.telegram.sent_messages(GROUP)
        if m.get("reply_to_message", {}).get("message_id") == message_id
    ]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def start_webhook_mode(start_bridge: Callable[..., Any], **overrides: Any) -> Harness:
    """A bridge that gets Telegram updates by webhook; returns once setWebhook was called."""
    port = free_port()
    server = {"host": "127.0.0.1", "port": port, "public_url": f"http://127.0.0.1:{port}"}
    harness: Harness = await start_bridge(server=server, **overrides)
    await harness.telegram.wait_for(lambda: harness.telegram.webhook is not None)
    return harness


def topic_update(update_id: int, message_id: int, thread_id: int, **sender: Any) -> dict[str, Any]:
    """A text message in a topic, as Telegram would push it, from whoever ``sender`` names."""
    return {
        "update_id": update_id,
        "message": {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": GROUP, "type": "supergroup", "title": "Support", "is_forum": True},
            "message_thread_id": thread_id,
            "is_topic_message": True,
            "text": "send this as an SMS, please",
            **sender,
        },
    }


# -- secrets -------------------------------------------------------------------------------


async def test_secrets_never_reach_logs_health_or_metrics(
    start_bridge: Callable[..., Any],
    gateway: FakeSmsMobileApi,
    telegram: FakeTelegram,
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "telegram", "uvicorn", "uvicorn.error", "uvicorn.access"):
        caplog.set_level(logging.DEBUG, logger=name)  # even if someone quietened them before
    secrets = secrets_of(gateway, telegram)
    endpoints: dict[str, str] = {}

    async def snapshot(label: str) -> None:
        for path in ("/healthz", "/metrics"):
            endpoints[f"{path} {label}"] = (await client.get(f"{harness.base}{path}")).text

    # Telegram refuses the token once at start-up (PTB puts the token in that error).
    telegram.fail_next("getMe", status=401, description="Unauthorized")
    harness: Harness = await start_bridge(gateway={"receive": "both", "status_poll_interval": 0.2})
    chat = harness.bridge.chats["support"]
    await telegram.wait_for(lambda: chat.health()["state"] == "down")
    await snapshot("while Telegram refused the token")
    await telegram.wait_for(lambda: chat.health()["state"] == "ok", timeout=5)

    # SMS in by the signed webhook, then by the plain one while sendMessage fails once (500).
    thread = await open_topic(harness, "signed hello")
    telegram.fail_next("sendMessage", status=500)
    plain = gateway.receive_sms(CUSTOMER, "plain hello")
    assert (await gateway.deliver_plain_webhook(harness.plain_hook, plain)).status_code == 202
    await telegram.wait_for(lambda: len(harness.posts()) == 2)
    assert telegram.count("sendMessage", status=500) == 1

    # A webhook with a wrong token is refused.
    refused = await client.post(
        f"{harness.base}/webhooks/sms/office/{HOOK_TOKEN[:-1]}x", content=b"{}"
    )
    assert refused.status_code == 403

    # A reply goes out, and the status poll asks about it.
    telegram.user_message(GROUP, AGENT, "reply one", thread_id=thread, first_name="Sam")
    await gateway.wait_for(lambda: len(gateway.sent) == 1)
    await gateway.wait_for(
        lambda: any(r.path == "/log/sent/sms/" for r in gateway.requests), timeout=5
    )

    # The gateway refuses our key (403) for the next reply: it fails, and the topic says so.
    gateway.fail_next("/sendsms/", status=403)
    telegram.user_message(GROUP, AGENT, "reply two", thread_id=thread, first_name="Sam")
    await telegram.wait_for(lambda: any("SMS not sent" in p for p in harness.posts()))

    # History asks the gateway with the key in the query string.
    telegram.user_message(GROUP, AGENT, "/history", thread_id=thread, first_name="Sam")
    await telegram.wait_for(lambda: any(p.startswith("📜") for p in harness.posts()))
    await snapshot("after the traffic")

    # Telegram revokes the token while we poll.
    telegram.fail_next("getUpdates", status=401, description="Unauthorized", count=50)
    await telegram.wait_for(lambda: chat.health()["state"] == "down", timeout=5)
    await snapshot("after Telegram went down")
    await harness.bridge.stop()

    # The scenario logged requests whose URLs carry the key and the token: they were masked.
    assert "HTTP Request" in caplog.text
    assert logs.MASK in caplog.text
    assert leaks(caplog.text, secrets) == []
    for record in caplog.records:
        where = f"{record.name}:{record.lineno}"
        assert leaks(record.getMessage(), secrets) == [], where
        assert leaks(logging.Formatter().format(record), secrets) == [], where
        if record.exc_info:
            formatted = logging.Formatter().formatException(record.exc_info)
            assert leaks(formatted, secrets) == [], where
    for label, body in endpoints.items():
        assert leaks(body, secrets) == [], f"{label}: {body}"


async def test_health_does_not_show_the_bot_token_when_telegram_rejects_it(
    start_bridge: Callable[..., Any], telegram: FakeTelegram, client: httpx.AsyncClient
) -> None:
    telegram.fail_next("getMe", status=401, description="Unauthorized", count=50)
    harness: Harness = await start_bridge()
    chat = harness.bridge.chats["support"]
    await telegram.wait_for(lambda: chat.health()["state"] == "down")
    response = await client.get(f"{harness.base}/healthz")
    assert response.status_code == 503
    assert response.json()["chats"]["support"]["last_error"]  # it does say what is wrong
    assert leaks(response.text, secrets_of(harness.gateway, telegram)) == [], response.text


# -- who may send --------------------------------------------------------------------------


async def test_stranger_writing_in_a_topic_is_refused_and_nothing_is_sent(
    harness: Harness,
) -> None:
    thread = await open_topic(harness)
    asked = harness.telegram.user_message(GROUP, STRANGER, "send this", thread_id=thread)
    await harness.telegram.wait_for(
        lambda: any(REFUSAL in r for r in replies_to(harness, asked["message_id"]))
    )
    assert len(harness.posts(thread_id=thread)) == 2  # the SMS, and the refusal beside it
    await harness.settled()
    assert harness.gateway.sent == []
    assert await outbox_rows(harness) == 0


@pytest.mark.parametrize(
    ("text", "in_topic"),
    [("/sms +15550001234 hi", False), ("/sms +15550001234 hi", True), ("/history", True)],
    ids=["sms-in-general", "sms-in-topic", "history-in-topic"],
)
async def test_stranger_commands_are_refused(harness: Harness, text: str, in_topic: bool) -> None:
    thread = await open_topic(harness) if in_topic else None
    asked = harness.telegram.user_message(GROUP, STRANGER, text, thread_id=thread)
    await harness.telegram.wait_for(
        lambda: any(REFUSAL in r for r in replies_to(harness, asked["message_id"]))
    )
    [refusal] = [m for m in harness.telegram.sent_messages(GROUP) if REFUSAL in m.get("text", "")]
    assert thread_of(refusal) == thread  # said where it was asked (None: General)
    await harness.settled()
    assert harness.gateway.sent == []
    assert await outbox_rows(harness) == 0
    assert not any(r.path.startswith("/conversation/") for r in harness.gateway.requests)
    assert [t.name for t in harness.topics()] == (["+1 555-123-4567"] if in_topic else [])


async def test_anonymous_admin_or_channel_is_refused(
    start_bridge: Callable[..., Any], client: httpx.AsyncClient
) -> None:
    """The fake cannot post as a chat, so the update Telegram would push is sent by hand."""
    harness = await start_webhook_mode(start_bridge)
    thread = await open_topic(harness)
    hook = harness.telegram.webhook
    assert hook is not None
    url = f"{harness.base}/webhooks/telegram/support"
    headers = {"X-Telegram-Bot-Api-Secret-Token": hook["secret_token"]}
    # An anonymous admin posts as the group itself; a channel posts as the channel.
    group = {"id": GROUP, "type": "supergroup", "title": "Support"}
    channel = {"id": -1009999999999, "type": "channel", "title": "News"}
    for update_id, sender in ((900_001, group), (900_002, channel)):
        update = topic_update(update_id, 5000 + update_id % 10, thread, sender_chat=sender)
        response = await client.post(url, json=update, headers=headers)
        assert response.status_code == 200, response.text
    await harness.telegram.wait_for(
        lambda: sum(REFUSAL in p for p in harness.posts(thread_id=thread)) == 2
    )
    await harness.settled()
    assert harness.gateway.sent == []
    assert await outbox_rows(harness) == 0


# -- echo suppression ----------------------------------------------------------------------


async def test_a_bot_in_a_topic_never_becomes_an_sms(start_bridge: Callable[..., Any]) -> None:
    # Even a bot that is (wrongly) on the allow-list: bots are never people.
    other_bot = 424242
    harness: Harness = await start_bridge(chat={"allowed_user_ids": [AGENT, other_bot]})
    thread = await open_topic(harness)
    harness.telegram.user_message(GROUP, other_bot, "beep", thread_id=thread, is_bot=True)
    harness.telegram.user_message(GROUP, AGENT, "a human reply", thread_id=thread)
    # Updates are handled in order: once the human's SMS is out, the bot's was decided on.
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1)
    await harness.settled()
    assert [s.message for s in harness.gateway.sent] == ["a human reply"]
    assert not any(REFUSAL in p for p in harness.posts())


async def test_the_bridges_own_posts_never_come_back_as_sms(
    start_bridge: Callable[..., Any], telegram: FakeTelegram
) -> None:
    """Its own posts, fed back by getUpdates, are dropped as a bot's: even with the bot (wrongly)
    on the allow-list, the SMS mirrored into the topic is not sent back to the customer."""
    harness: Harness = await start_bridge(chat={"allowed_user_ids": [AGENT, telegram.bot_id]})
    thread = await open_topic(harness, "please call")
    reply = harness.telegram.user_message(GROUP, AGENT, "calling now", thread_id=thread)
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1)
    # The reply's status reaction is the bridge's last word on it.
    await harness.telegram.wait_for(
        lambda: harness.telegram.reaction(GROUP, reply["message_id"]) != []
    )
    own = harness.telegram.sent_messages(GROUP)
    assert [m["text"] for m in own] == ["please call"] and own[0]["from"]["id"] == telegram.bot_id
    for message in own:
        harness.telegram.redeliver(GROUP, message["message_id"])
    await harness.settled()
    assert [(s.recipients, s.message) for s in harness.gateway.sent] == [(CUSTOMER, "calling now")]
    assert not any(REFUSAL in p for p in harness.posts())


async def test_posts_by_a_bot_pushed_back_by_webhook_never_become_sms(
    start_bridge: Callable[..., Any], client: httpx.AsyncClient, telegram: FakeTelegram
) -> None:
    """Its own posts (as another bridge instance's bot would see them) are dropped as bots'."""
    harness = await start_webhook_mode(
        start_bridge, chat={"allowed_user_ids": [AGENT, telegram.bot_id]}
    )
    thread = await open_topic(harness, "please call")
    harness.telegram.user_message(GROUP, AGENT, "/sms +15551234567 on my way", thread_id=thread)
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1)
    await harness.telegram.wait_for(lambda: any("on my way" in p for p in harness.posts()))
    hook = harness.telegram.webhook
    assert hook is not None
    headers = {"X-Telegram-Bot-Api-Secret-Token": hook["secret_token"]}
    own = harness.telegram.sent_messages(GROUP)
    assert len(own) == 2 and all(m["from"]["is_bot"] for m in own)  # the SMS and the echo
    for index, message in enumerate(own):
        update = {"update_id": 800_000 + index, "message": message}
        response = await client.post(
            f"{harness.base}/webhooks/telegram/support", json=update, headers=headers
        )
        assert response.status_code == 200, response.text
    await harness.settled()
    assert [s.message for s in harness.gateway.sent] == ["on my way"]
    assert not any(REFUSAL in p for p in harness.posts())
