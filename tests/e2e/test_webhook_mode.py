"""Telegram by webhook instead of long polling: setWebhook, the secret header, redelivery."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from conftest import AGENT, CUSTOMER, GROUP, Harness

from bridge.store.schema import outbox
from connectors.chat.telegram.fake import FakeTelegram

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0, trust_env=False) as http:
        yield http


@pytest.fixture
async def hooked(start_bridge: Callable[..., Any], telegram: FakeTelegram) -> Harness:
    """A bridge with ``server.public_url``, once it has told Telegram where to push."""
    port = free_port()
    server = {"host": "127.0.0.1", "port": port, "public_url": f"http://127.0.0.1:{port}"}
    harness: Harness = await start_bridge(server=server)
    assert harness.bridge.port == port
    await telegram.wait_for(lambda: telegram.webhook is not None)
    return harness


def hook_url(harness: Harness) -> str:
    return f"{harness.base}/webhooks/telegram/support"


def secret(telegram: FakeTelegram) -> str:
    assert telegram.webhook is not None
    value: str = telegram.webhook["secret_token"]
    return value


async def open_topic(harness: Harness) -> int:
    await harness.sms("hello from the phone")
    await harness.telegram.wait_for(lambda: len(harness.posts()) == 1)
    [topic] = harness.topics()
    return topic.thread_id


async def outbox_rows(harness: Harness) -> int:
    assert harness.bridge.store is not None
    async with harness.bridge.store.db.read() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(outbox))).scalar() or 0


def reply_update(harness: Harness, thread: int, text: str) -> dict[str, Any]:
    """The agent's reply in the topic as the update Telegram will push (not pushed yet)."""
    message = harness.telegram.user_message(GROUP, AGENT, text, thread_id=thread)
    [update] = [
        u
        for u in harness.telegram.pending_updates()
        if u.get("message", {}).get("message_id") == message["message_id"]
    ]
    return json.loads(json.dumps(update))  # a copy, as it would travel


def handmade_update(thread: int, text: str, update_id: int = 700_001) -> dict[str, Any]:
    """The agent's reply in the topic, built by hand so that the fake never pushes it."""
    return {
        "update_id": update_id,
        "message": {
            "message_id": 9_000 + update_id % 1000,
            "from": {"id": AGENT, "is_bot": False, "first_name": "Sam"},
            "chat": {"id": GROUP, "type": "supergroup", "title": "Support", "is_forum": True},
            "date": int(time.time()),
            "message_thread_id": thread,
            "is_topic_message": True,
            "text": text,
        },
    }


def assert_never_polled(telegram: FakeTelegram) -> None:
    assert telegram.count("getUpdates") == 0
    assert telegram.count("deleteWebhook") == 0


async def test_bridge_sets_its_webhook_with_a_secret(
    hooked: Harness, telegram: FakeTelegram
) -> None:
    hook = telegram.webhook
    assert hook is not None
    assert hook["url"] == f"http://127.0.0.1:{hooked.bridge.port}/webhooks/telegram/support"
    token_secret = telegram.token.partition(":")[2]
    assert hook["secret_token"] and token_secret not in hook["secret_token"]
    assert "message" in hook["allowed_updates"]
    support = hooked.bridge.chats["support"].health()
    assert support["state"] == "ok" and support["transport"] == "webhook"
    assert telegram.count("setWebhook", status=200) == 1
    assert_never_polled(telegram)


async def test_reply_in_a_topic_pushed_by_webhook_becomes_an_sms(
    hooked: Harness, telegram: FakeTelegram
) -> None:
    thread = await open_topic(hooked)
    reply = telegram.user_message(GROUP, AGENT, "on my way", thread_id=thread)
    await hooked.gateway.wait_for(lambda: len(hooked.gateway.sent) == 1)
    assert [(s.recipients, s.message) for s in hooked.gateway.sent] == [(CUSTOMER, "on my way")]
    await telegram.wait_for(lambda: telegram.reaction(GROUP, reply["message_id"]) != [])
    assert telegram.pending_updates() == []  # every push was answered 2xx
    assert_never_polled(telegram)
    assert telegram.violations == []


@pytest.mark.parametrize(
    "given", [None, "", "wrong-secret", "prefix"], ids=["missing", "empty", "wrong", "truncated"]
)
async def test_push_without_the_right_secret_is_403_and_does_nothing(
    hooked: Harness, telegram: FakeTelegram, client: httpx.AsyncClient, given: str | None
) -> None:
    thread = await open_topic(hooked)
    update = handmade_update(thread, "do not send")
    headers = {}
    if given is not None:
        headers[SECRET_HEADER] = secret(telegram)[:10] if given == "prefix" else given
    response = await client.post(hook_url(hooked), json=update, headers=headers)
    assert response.status_code == 403, response.text
    assert "secret" in response.json()["error"].lower()
    await hooked.settled()
    assert hooked.gateway.sent == []
    assert await outbox_rows(hooked) == 0
    assert len(hooked.posts()) == 1  # no refusal, no echo: nothing happened at all

    # The very same update with the right secret is taken: the 403 was for the header alone.
    headers[SECRET_HEADER] = secret(telegram)
    response = await client.post(hook_url(hooked), json=update, headers=headers)
    assert response.status_code == 200, response.text
    await hooked.gateway.wait_for(lambda: len(hooked.gateway.sent) == 1)
    assert hooked.gateway.sent[0].message == "do not send"


async def test_redelivered_update_sends_one_sms(
    hooked: Harness, telegram: FakeTelegram, client: httpx.AsyncClient
) -> None:
    thread = await open_topic(hooked)
    update = reply_update(hooked, thread, "only once")  # the fake pushes it once by itself
    await hooked.gateway.wait_for(lambda: len(hooked.gateway.sent) == 1)
    headers = {SECRET_HEADER: secret(telegram)}
    # Telegram redelivers when it missed our answer: the same JSON again, even concurrently.
    again = await asyncio.gather(
        client.post(hook_url(hooked), json=update, headers=headers),
        client.post(hook_url(hooked), json=update, headers=headers),
    )
    assert [r.status_code for r in again] == [200, 200], [r.text for r in again]
    await hooked.settled()
    assert [s.message for s in hooked.gateway.sent] == ["only once"]
    assert await outbox_rows(hooked) == 1
    assert_never_polled(telegram)


@pytest.mark.parametrize(
    "body",
    [
        b'{"update_id": 1, "message": ',
        b"\xc3\x28",
        b"[]",
        b'"an update"',
        b'{"update_id": 1, "message": "hi"}',
        b'{"message": {"message_id": 1}}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=[
        "malformed",
        "not-utf8",
        "array",
        "string",
        "message-not-object",
        "no-update-id",
        "deeply-nested",
    ],
)
async def test_push_that_is_not_an_update_is_400(
    hooked: Harness, telegram: FakeTelegram, client: httpx.AsyncClient, body: bytes
) -> None:
    headers = {SECRET_HEADER: secret(telegram), "Content-Type": "application/json"}
    response = await client.post(hook_url(hooked), content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert "malformed" in response.json()["error"]
    await hooked.settled()
    assert await outbox_rows(hooked) == 0
    assert telegram.count("sendMessage") == 0


async def test_webhook_for_an_unknown_chat_is_404(
    hooked: Harness, telegram: FakeTelegram, client: httpx.AsyncClient
) -> None:
    response = await client.post(
        f"{hooked.base}/webhooks/telegram/nope", json={}, headers={SECRET_HEADER: secret(telegram)}
    )
    assert response.status_code == 404
    assert "nope" in response.json()["error"]
