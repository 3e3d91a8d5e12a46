"""Telegram's webhook updates, any JSON with the right secret: a ChatMessage or a 4xx.

Slack's Events API requests go through bolt, which needs its app running; the schemathesis run
(test_schemathesis.py) fuzzes them through the bridge's endpoint instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator

import pytest
from fuzz_strategies import json_bodies, objects, texts
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from bridge.errors import WebhookRejected
from bridge.models import ChatMessage
from connectors.chat.telegram.client import TelegramChat
from connectors.chat.telegram.config import TelegramConfig
from connectors.chat.telegram.fake import FakeLimits, FakeTelegram

GROUP = -1001234567890
# Finding one accepted payload is enough: no shrinking it to the simplest one.
REACH = settings(max_examples=1000, database=None, phases=[Phase.generate])
SECRET = "fuzz-telegram-secret"

users = objects(
    {"id": st.integers(1, 10**12), "is_bot": st.booleans(), "first_name": texts},
    {"username": texts, "last_name": texts},
)
chats = objects(
    {"id": st.sampled_from([GROUP, GROUP, -100999]), "type": st.just("supergroup")},
    {"is_forum": st.booleans(), "title": texts},
)
photo = objects(
    {"file_id": texts, "file_unique_id": texts, "width": st.integers(), "height": st.integers()},
    {"file_size": st.integers()},
)
basics = {"message_id": st.integers(1, 10**6), "date": st.integers(0, 2 * 10**9), "chat": chats}
# Text and sender required (mostly well typed), so that most updates reach the translation.
replied = objects(
    basics,
    {
        "from": users,
        "text": texts,
        "forum_topic_created": objects({"name": texts, "icon_color": st.integers()}, {}),
    },
)
messages = objects(
    basics | {"text": texts, "from": users},
    {
        "caption": texts,
        "message_thread_id": st.integers(1, 100),
        "is_topic_message": st.booleans(),
        "reply_to_message": replied,
        "photo": st.lists(photo, max_size=2),
    },
)
updates = objects(
    {"update_id": st.integers(0, 2**31)}, {"message": messages, "edited_message": messages}
)


@pytest.fixture
def started() -> Iterator[tuple[asyncio.AbstractEventLoop, TelegramChat, list[ChatMessage]]]:
    """The connector in webhook mode against the fake, on a loop of its own: hypothesis calls
    the property synchronously, one example at a time."""
    loop = asyncio.new_event_loop()
    seen: list[ChatMessage] = []
    stack = contextlib.AsyncExitStack()

    async def collect(message: ChatMessage) -> None:
        seen.append(message)

    async def start() -> TelegramChat:
        fake = await stack.enter_async_context(FakeTelegram(limits=FakeLimits.off()))
        fake.add_forum(GROUP, "Support")
        config = TelegramConfig.model_validate(
            {
                "name": "support",
                "type": "telegram",
                "bot_token": fake.token,
                "chat_id": GROUP,
                "base_url": fake.base_url,
                "transport": "webhook",
                "webhook_secret": SECRET,
            }
        )
        chat = TelegramChat(config, "http://127.0.0.1:9/webhooks/telegram/support")
        await chat.start(collect)
        stack.push_async_callback(chat.stop)
        await fake.wait_for(lambda: fake.webhook is not None)  # the bot knows who it is
        return chat

    try:
        yield loop, loop.run_until_complete(start()), seen
    finally:
        loop.run_until_complete(stack.aclose())
        loop.close()


HEADERS = {"x-telegram-bot-api-secret-token": SECRET, "content-type": "application/json"}


def handled(loop: asyncio.AbstractEventLoop, chat: TelegramChat, body: bytes) -> bool:
    """True when the update was taken (a 200), False when refused with a 4xx."""
    try:
        answer = loop.run_until_complete(chat.accept_webhook(HEADERS, body))
    except WebhookRejected as exc:
        refused = exc
    else:
        assert answer is None
        return True
    assert 400 <= refused.status < 500 and refused.reason
    return False


def check_messages(seen: list[ChatMessage]) -> None:
    for message in seen:
        assert isinstance(message.text, str) and isinstance(message.message_id, str)
        assert isinstance(message.user.id, str) and isinstance(message.user.name, str)
        assert message.thread_id is None or message.thread_id.isdecimal()
        assert message.reply_to is None or message.reply_to.isdecimal()


def test_any_update_with_the_secret_is_translated_or_refused_with_a_4xx(
    started: tuple[asyncio.AbstractEventLoop, TelegramChat, list[ChatMessage]],
) -> None:
    loop, chat, seen = started

    @settings(
        max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(body=json_bodies(updates))
    def check(body: bytes) -> None:
        handled(loop, chat, body)

    check()
    check_messages(seen)


def test_the_updates_reach_translation(
    started: tuple[asyncio.AbstractEventLoop, TelegramChat, list[ChatMessage]],
) -> None:
    """Without this, a connector refusing everything would pass the property above."""
    loop, chat, seen = started

    def translated(body: bytes) -> bool:
        before = len(seen)
        return handled(loop, chat, body) and len(seen) > before

    find(json_bodies(updates), translated, settings=REACH)
    check_messages(seen)


def test_a_message_without_its_chat_is_refused(
    started: tuple[asyncio.AbstractEventLoop, TelegramChat, list[ChatMessage]],
) -> None:
    loop, chat, _seen = started
    headers = {"x-telegram-bot-api-secret-token": SECRET}
    body = json.dumps({"update_id": 1, "message": {"message_id": 1, "date": 0}}).encode()
    with pytest.raises(WebhookRejected) as refused:
        loop.run_until_complete(chat.accept_webhook(headers, body))
    assert refused.value.status == 400
