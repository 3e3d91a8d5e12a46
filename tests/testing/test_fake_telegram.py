"""The fake Telegram Bot API server, driven by the real python-telegram-bot client."""

from __future__ import annotations

import asyncio
import datetime as dtm
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from telegram import Bot, Message, ReplyParameters
from telegram.error import BadRequest, Conflict, NetworkError, RetryAfter

from bridge.testing.server import serve
from connectors.chat.telegram.fake import ANY_THREAD, FakeLimits, FakeTelegram
from connectors.chat.telegram.spec import check_object

FORUM = -1001234567890
GROUP = -1009876543210
USER = 4242


def make_bot(fake: FakeTelegram) -> Bot:
    return Bot(
        fake.token,
        base_url=f"{fake.base_url}/bot",
        base_file_url=f"{fake.base_url}/file/bot",
    )


# One server for the module: starting and stopping uvicorn costs ~0.2 s, reset() costs nothing.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest_asyncio.fixture(loop_scope="module")
async def fake(server: FakeTelegram) -> FakeTelegram:
    server.reset()
    server.limits, server.latency = FakeLimits.off(), 0.0
    server.add_forum(FORUM)
    server.add_group(GROUP)
    server.add_private(USER)
    return server


@pytest_asyncio.fixture(loop_scope="module")
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    async with make_bot(fake) as bot:
        yield bot


@pytest.fixture
def api(fake: FakeTelegram) -> str:
    return f"{fake.base_url}/bot{fake.token}"


async def test_get_me_on_initialize(fake: FakeTelegram, bot: Bot) -> None:
    assert bot.username == "smsbridge_bot"
    assert bot.id == 123456
    me = await bot.get_me()
    assert me.has_topics_enabled is False
    assert fake.count("getMe") == 2
    assert fake.violations == []


async def test_send_into_created_topic(fake: FakeTelegram, bot: Bot) -> None:
    topic = await bot.create_forum_topic(FORUM, "+1 555 0100")
    msg = await bot.send_message(FORUM, "héllo 👋", message_thread_id=topic.message_thread_id)

    assert msg.message_thread_id == topic.message_thread_id
    assert msg.is_topic_message is True
    # The thread id is the id of the service message that created the topic.
    created = fake.message(FORUM, topic.message_thread_id)
    assert created is not None
    assert created["forum_topic_created"]["name"] == "+1 555 0100"
    assert msg.message_id == topic.message_thread_id + 1
    assert [m["text"] for m in fake.sent_messages(FORUM, topic.message_thread_id)] == ["héllo 👋"]
    assert fake.sent_messages(FORUM, None) == []
    assert len(fake.sent_messages(FORUM, ANY_THREAD)) == 1
    assert fake.topics(FORUM)[0].name == "+1 555 0100"
    assert check_object("Message", fake.message(FORUM, msg.message_id)) == []
    assert fake.violations == []


async def test_deleted_topic_is_not_found(fake: FakeTelegram, bot: Bot) -> None:
    topic = await bot.create_forum_topic(FORUM, "gone")
    await bot.send_message(FORUM, "first", message_thread_id=topic.message_thread_id)
    fake.delete_topic(FORUM, topic.message_thread_id)

    with pytest.raises(BadRequest, match="thread not found"):
        await bot.send_message(FORUM, "again", message_thread_id=topic.message_thread_id)
    with pytest.raises(BadRequest, match="thread not found"):
        await bot.send_message(FORUM, "never existed", message_thread_id=999)
    assert fake.pending_updates() == []  # deletion by a human is silent
    assert fake.topics(FORUM)[0].deleted is True
    assert fake.sent_messages(FORUM) == []


async def test_closed_topic_refuses_until_reopened(fake: FakeTelegram, bot: Bot) -> None:
    topic = await bot.create_forum_topic(FORUM, "closing")
    thread = topic.message_thread_id
    fake.close_topic(FORUM, thread)

    [update] = await bot.get_updates()
    assert update.message is not None
    assert update.message.forum_topic_closed is not None
    assert update.message.message_thread_id == thread
    with pytest.raises(BadRequest, match="Topic_closed"):
        await bot.send_message(FORUM, "hello?", message_thread_id=thread)
    with pytest.raises(BadRequest, match="Topic_not_modified"):
        await bot.close_forum_topic(FORUM, thread)

    assert await bot.reopen_forum_topic(FORUM, thread) is True
    await bot.send_message(FORUM, "back", message_thread_id=thread)
    assert fake.topics(FORUM)[0].closed is False


async def test_flood_limit_answers_429(
    fake: FakeTelegram, bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without it PTB warns while building RetryAfter, which filterwarnings=error makes fatal.
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    fake.limits = FakeLimits(per_chat=(2, 1.0), group=None, overall=None)
    await bot.send_message(GROUP, "1")
    await bot.send_message(GROUP, "2")
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(GROUP, "3")
    retry_after = caught.value.retry_after
    assert isinstance(retry_after, dtm.timedelta)
    assert retry_after >= dtm.timedelta(seconds=1)
    assert fake.count("sendMessage", 429) == 1
    assert [m["text"] for m in fake.sent_messages(GROUP)] == ["1", "2"]
    await bot.send_message(USER, "other chats are not held up")


async def test_group_limit_is_shared_by_topics(fake: FakeTelegram, api: str) -> None:
    fake.limits = FakeLimits(per_chat=None, group=(2, 60.0))
    async with httpx.AsyncClient(base_url=api) as client:
        first = await client.post("/createForumTopic", data={"chat_id": FORUM, "name": "a"})
        thread = first.json()["result"]["message_thread_id"]
        ok = await client.post("/sendMessage", data={"chat_id": FORUM, "text": "x"})
        limited = await client.post(
            "/sendMessage", data={"chat_id": FORUM, "text": "y", "message_thread_id": thread}
        )
    assert ok.status_code == 200
    assert limited.status_code == 429
    body = limited.json()
    assert body["parameters"]["retry_after"] >= 59
    assert (
        body["description"] == f"Too Many Requests: retry after {body['parameters']['retry_after']}"
    )


async def test_reactions_follow_the_spec_list(fake: FakeTelegram, bot: Bot) -> None:
    msg = await bot.send_message(USER, "sms queued")
    assert await bot.set_message_reaction(USER, msg.message_id, "👍") is True
    assert fake.reaction(USER, msg.message_id) == ["👍"]

    with pytest.raises(BadRequest, match="Reaction_invalid"):
        await bot.set_message_reaction(USER, msg.message_id, "✅")
    assert any("✅" in v for v in fake.violations)
    assert fake.reaction(USER, msg.message_id) == ["👍"]

    fake.violations.clear()
    with pytest.raises(BadRequest, match="Reactions_too_many"):
        await bot.set_message_reaction(USER, msg.message_id, ["👍", "👌"])
    with pytest.raises(BadRequest, match="Message to react not found"):
        await bot.set_message_reaction(USER, 999, "👍")
    await bot.set_message_reaction(USER, msg.message_id, [])
    assert fake.reaction(USER, msg.message_id) == []


async def test_missing_required_field(fake: FakeTelegram, api: str) -> None:
    async with httpx.AsyncClient() as client:
        no_chat = await client.post(f"{api}/sendMessage", data={"text": "hi"})
        no_text = await client.post(f"{api}/sendMessage", data={"chat_id": USER})
    assert no_chat.status_code == 400
    assert no_chat.json() == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: chat_id is empty",
    }
    assert no_text.json()["description"] == "Bad Request: message text is empty"
    assert fake.violations == [
        "sendMessage: missing required field 'chat_id'",
        "sendMessage: missing required field 'text'",
    ]
    assert fake.count("sendMessage", 400) == 2


async def test_wire_formats_and_routing(fake: FakeTelegram, api: str) -> None:
    async with httpx.AsyncClient() as client:
        as_json = await client.post(
            f"{api}/SENDMESSAGE",
            json={"chat_id": USER, "text": "json", "reply_parameters": {"message_id": 77}},
        )
        as_query = await client.get(f"{api}/sendMessage", params={"chat_id": USER, "text": "q"})
        legacy = await client.post(
            f"{api}/sendMessage", data={"chat_id": USER, "text": "re", "reply_to_message_id": 1}
        )
        unknown = await client.post(f"{api}/sendSmoke", data={"chat_id": USER})
        bad_token = await client.post(f"{fake.base_url}/bot1:nope/getMe")
        extra = await client.post(
            f"{api}/sendChatAction", data={"chat_id": USER, "action": "typing", "colour": "red"}
        )
        bad_int = await client.post(
            f"{api}/sendMessage", data={"chat_id": USER, "text": "x", "message_thread_id": "abc"}
        )
    assert as_json.json()["description"] == "Bad Request: message to be replied not found"
    assert legacy.json()["result"]["reply_to_message"]["text"] == "q"
    assert as_query.json()["result"]["text"] == "q"
    assert (unknown.status_code, unknown.json()["description"]) == (404, "Not Found")
    assert (bad_token.status_code, bad_token.json()["description"]) == (401, "Unauthorized")
    assert extra.json() == {"ok": True, "result": True}
    assert bad_int.status_code == 400
    assert fake.calls[0].method == "sendMessage"
    assert fake.violations == [
        "unknown method 'sendSmoke'",
        "sendChatAction: unknown field 'colour'",
        "sendMessage: message_thread_id: 'abc' is not an Integer",
    ]


async def test_message_errors(fake: FakeTelegram, bot: Bot) -> None:
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(-100555, "nobody home")
    with pytest.raises(BadRequest, match="Message to be replied not found"):
        await bot.send_message(USER, "re", reply_parameters=ReplyParameters(message_id=404))
    lenient = ReplyParameters(message_id=404, allow_sending_without_reply=True)
    assert (await bot.send_message(USER, "re", reply_parameters=lenient)).reply_to_message is None

    msg = await bot.send_message(USER, "v1")
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_text("v1", USER, msg.message_id)
    edited = await bot.edit_message_text("v2", USER, msg.message_id)
    assert isinstance(edited, Message)
    assert edited.text == "v2"
    assert edited.edit_date is not None
    assert fake.violations == []

    # 2049 emoji are 4098 UTF-16 code units although len() says 2049.
    with pytest.raises(BadRequest, match="Message is too long"):
        await bot.send_message(USER, "😀" * 2049)
    await bot.send_message(USER, "😀" * 2048)
    assert fake.violations == ["sendMessage: text is 4098 UTF-16 units (max 4096)"]


async def test_replies_carry_the_original(fake: FakeTelegram, bot: Bot) -> None:
    sms = await bot.send_message(GROUP, "SMS from +1 555 0100")
    fake.user_message(GROUP, 7, "answer", reply_to=sms.message_id, username="op")
    [update] = await bot.get_updates()
    assert update.message is not None
    assert update.message.reply_to_message is not None
    assert update.message.reply_to_message.message_id == sms.message_id
    # Like Telegram: a reply chain outside a forum topic still gets a message_thread_id.
    assert update.message.message_thread_id == sms.message_id
    assert update.message.is_topic_message is None


async def test_get_updates_and_confirm(fake: FakeTelegram, bot: Bot) -> None:
    sent = fake.user_message(FORUM, 7, "first", first_name="Op")
    fake.user_message(FORUM, 7, "second")
    assert [check_object("Update", u) for u in fake.pending_updates()] == [[], []]
    updates = await bot.get_updates()
    assert [u.message.text for u in updates if u.message] == ["first", "second"]
    assert updates[0].message is not None
    assert updates[0].message.message_id == sent["message_id"]
    assert updates[0].update_id < updates[1].update_id

    assert len(await bot.get_updates(offset=updates[0].update_id + 1)) == 1
    assert await bot.get_updates(offset=updates[1].update_id + 1) == ()
    assert fake.pending_updates() == []

    fake.user_edit(FORUM, sent["message_id"], "first!")
    [edit] = await bot.get_updates()
    assert edit.edited_message is not None
    assert edit.edited_message.text == "first!"

    # allowed_updates sticks for later calls; updates the bot opted out of are never created.
    await bot.get_updates(offset=edit.update_id + 1, allowed_updates=["edited_message"])
    fake.user_message(FORUM, 7, "ignored")
    thread = fake.create_topic_by_human(FORUM, "made by a human")
    assert await bot.get_updates() == ()
    await bot.get_updates(allowed_updates=[])
    fake.user_message(FORUM, 7, "in topic", thread_id=thread)
    [topical] = await bot.get_updates()
    assert topical.message is not None
    assert topical.message.is_topic_message is True
    assert topical.message.reply_to_message is not None
    assert topical.message.reply_to_message.forum_topic_created is not None


async def test_long_poll_returns_early(fake: FakeTelegram, bot: Bot) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=10))
    await fake.wait_for(lambda: fake.waiting_polls == 1)  # the poll holds on for an update
    started = time.monotonic()
    fake.user_message(USER, USER, "wake up")
    updates = await poll
    # Well before the poll's 10 s: it answered the update, not its timeout. The room is for a
    # busy machine, where a tight bound would measure the scheduler.
    assert time.monotonic() - started < 5.0
    assert updates[0].message is not None
    assert updates[0].message.text == "wake up"


async def test_second_poller_conflicts_the_first(fake: FakeTelegram, api: str) -> None:
    async with httpx.AsyncClient() as client:
        first = asyncio.create_task(client.post(f"{api}/getUpdates", data={"timeout": 5}))
        await asyncio.sleep(0.1)
        second = await client.post(f"{api}/getUpdates", data={"timeout": 0})
        older = await first
    assert second.json() == {"ok": True, "result": []}
    assert older.status_code == 409
    assert "terminated by other getUpdates request" in older.json()["description"]


async def test_webhook_push_with_secret_and_retry(fake: FakeTelegram, bot: Bot) -> None:
    received: list[tuple[str | None, dict[str, Any]]] = []
    answers = [500]

    async def hook(request: Request) -> Response:
        received.append(
            (request.headers.get("x-telegram-bot-api-secret-token"), await request.json())
        )
        return Response(status_code=answers.pop() if answers else 200)

    receiver = Starlette(routes=[Route("/tg", hook, methods=["POST"])])
    async with serve(receiver) as url:
        await bot.set_webhook(f"{url}/tg", secret_token="s3cr3t_-", allowed_updates=["message"])
        with pytest.raises(Conflict, match="webhook is active"):
            await bot.get_updates()
        fake.user_message(FORUM, 7, "via webhook")
        await fake.wait_for(lambda: len(received) == 2 and not fake.pending_updates())

        assert received[0] == received[1]  # the same update, retried after the 500
        secret, update = received[1]
        assert secret == "s3cr3t_-"
        assert update["message"]["text"] == "via webhook"
        info = await bot.get_webhook_info()
        assert info.url == f"{url}/tg"
        assert info.pending_update_count == 0
        assert info.last_error_message is not None

        await bot.delete_webhook()  # returns once the pusher has stopped
        fake.user_message(FORUM, 7, "polled")
        [polled] = await bot.get_updates()
        assert len(received) == 2  # not pushed, though the poll gave it a chance
        assert polled.message is not None
        assert polled.message.text == "polled"
    with pytest.raises(BadRequest, match="Secret token contains unallowed characters"):
        await bot.set_webhook("http://127.0.0.1:9/tg", secret_token="not ok!")


async def test_fail_next(fake: FakeTelegram, bot: Bot, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    fake.fail_next("sendMessage", count=2)
    for _ in range(2):
        with pytest.raises(NetworkError, match="Internal Server Error"):
            await bot.send_message(USER, "x")
    await bot.send_message(USER, "x")
    fake.fail_next(
        "sendmessage", status=429, description="Too Many Requests: retry after 3", retry_after=3
    )
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(USER, "x")
    assert caught.value.retry_after == dtm.timedelta(seconds=3)
    assert fake.count("sendMessage", 500) == 2
    assert fake.count("sendMessage") == 4
    assert len(fake.sent_messages(USER)) == 1


async def test_files_round_trip(fake: FakeTelegram, bot: Bot) -> None:
    fake.user_message(FORUM, 7, "look", photo=True)
    [update] = await bot.get_updates()
    assert update.message is not None
    assert update.message.caption == "look"
    inbound = await update.message.photo[-1].get_file()
    assert bytes(await inbound.download_as_bytearray()).startswith(b"\xff\xd8")

    png = b"\x89PNG\r\n\x1a\n\x00binary\r\n--"
    sent = await bot.send_photo(FORUM, png, caption="mms")
    outbound = await bot.get_file(sent.photo[-1].file_id)
    assert bytes(await outbound.download_as_bytearray()) == png
    assert fake.violations == []


async def test_topics_need_a_forum_and_latency_applies(fake: FakeTelegram, bot: Bot) -> None:
    with pytest.raises(BadRequest, match="The chat is not a forum"):
        await bot.create_forum_topic(GROUP, "nope")
    with pytest.raises(BadRequest, match="Topic_id_invalid"):
        await bot.close_forum_topic(FORUM, 12345)
    topic = await bot.create_forum_topic(FORUM, "t", icon_color=16766590)
    assert topic.icon_color == 16766590
    assert await bot.edit_forum_topic(FORUM, topic.message_thread_id, name="renamed") is True
    with pytest.raises(BadRequest, match="Topic_not_modified"):
        await bot.edit_forum_topic(FORUM, topic.message_thread_id, name="renamed")
    assert await bot.delete_forum_topic(FORUM, topic.message_thread_id) is True
    assert fake.violations == []

    fake.latency = 0.1
    started = time.monotonic()
    await bot.send_chat_action(USER, "typing")
    assert time.monotonic() - started >= 0.1


async def test_wait_for_explains_timeouts(fake: FakeTelegram) -> None:
    with pytest.raises(AssertionError, match="still false"):
        await fake.wait_for(lambda: fake.count("sendMessage") > 0, timeout=0.05)


async def test_private_chat_topics_come_with_threaded_mode(fake: FakeTelegram, bot: Bot) -> None:
    """Bot API 9.4: topics in a private chat once the bot has Threaded Mode (getMe says so);
    closing and reopening stay forum-only."""
    assert (await bot.get_me()).has_topics_enabled is False
    with pytest.raises(BadRequest, match="The chat is not a forum"):
        await bot.create_forum_topic(USER, "+1 555-123-4567")
    with pytest.raises(BadRequest, match="Message thread not found"):
        await bot.send_message(USER, "hi", message_thread_id=1)
    fake.has_topics_enabled = True
    assert (await bot.get_me()).has_topics_enabled is True
    topic = await bot.create_forum_topic(USER, "+1 555-123-4567")
    sent = await bot.send_message(USER, "hi", message_thread_id=topic.message_thread_id)
    assert sent.is_topic_message and sent.message_thread_id == topic.message_thread_id
    assert [t.name for t in fake.topics(USER)] == ["+1 555-123-4567"]
    assert [m["text"] for m in fake.sent_messages(USER, topic.message_thread_id)] == ["hi"]
    with pytest.raises(BadRequest, match="The chat is not a forum"):
        await bot.close_forum_topic(USER, topic.message_thread_id)
    assert await bot.edit_forum_topic(USER, topic.message_thread_id, name="Alice") is True
    reply = fake.user_message(USER, USER, "hello", thread_id=topic.message_thread_id)
    assert reply["is_topic_message"] and reply["message_thread_id"] == topic.message_thread_id
    assert fake.violations == []
