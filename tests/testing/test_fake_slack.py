"""The fake Slack, driven by the real slack_sdk clients: specs, errors, uploads, event delivery."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.testing.server import serve
from connectors.chat.slack.fake import FakeSlack, Limits

CHANNEL = "C0GENERAL"
HUMAN = "U0HUMAN"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(ack_timeout=0.3, retry_delays=(0.0, 0.05, 0.05)) as server:
        server.add_channel(CHANNEL, "general")
        server.add_user(HUMAN, "Hana Human")
        yield server


@pytest.fixture
async def client(fake: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=fake.bot_token, base_url=fake.api_url, retry_handlers=[])


async def error_of(call: Any) -> tuple[int, str]:
    with pytest.raises(SlackApiError) as raised:
        await call
    return raised.value.response.status_code, raised.value.response["error"]


async def test_calls_are_checked_against_the_method_specs(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    assert await error_of(client.api_call("chat.postMassage")) == (200, "unknown_method")
    assert await error_of(client.chat_postMessage(channel="", text="x")) == (
        200,
        "channel_not_found",
    )
    no_text = client.api_call("chat.postMessage", json={"channel": CHANNEL})
    assert await error_of(no_text) == (200, "no_text")
    await client.chat_postMessage(channel=CHANNEL, text="hi", colour="red")
    assert any("unknown argument 'colour'" in v for v in fake.violations)
    assert any("unknown method 'chat.postMassage'" in v for v in fake.violations)
    wrong = AsyncWebClient(token="xoxb-wrong", base_url=fake.api_url)
    assert await error_of(wrong.auth_test()) == (200, "invalid_auth")
    app = AsyncWebClient(token=fake.app_token, base_url=fake.api_url)
    assert await error_of(app.auth_test()) == (200, "not_allowed_token_type")
    with pytest.raises(ValueError, match="never answers"):
        fake.fail_next("reactions.add", "no_such_error")


async def test_threads_follow_slack_rules(fake: FakeSlack, client: AsyncWebClient) -> None:
    parent = (await client.chat_postMessage(channel=CHANNEL, text="+1 555-123-4567"))["ts"]
    reply = (await client.chat_postMessage(channel=CHANNEL, text="a", thread_ts=parent))["ts"]
    event_reply = fake.user_message(CHANNEL, HUMAN, "b", thread_ts=parent)
    assert event_reply["parent_user_id"] == "U0SMSBOT"
    assert fake.message(CHANNEL, parent)["reply_count"] == 2  # type: ignore[index]
    assert fake.violations == []
    await client.chat_postMessage(channel=CHANNEL, text="c", thread_ts=reply)
    assert fake.texts(CHANNEL, parent) == ["a", "c"]  # a reply's ts leads to its parent
    assert fake.violations == [f"thread_ts {reply} is a reply; use its parent's ts"]
    replies = await client.conversations_replies(channel=CHANNEL, ts=parent)
    assert [m["text"] for m in replies["messages"]] == ["+1 555-123-4567", "a", "b", "c"]


async def test_posting_over_the_channel_rate_gets_429_with_retry_after(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    fake.limits = Limits(post_per_channel=(1, 1.0))
    await client.chat_postMessage(channel=CHANNEL, text="one")
    with pytest.raises(SlackApiError) as raised:
        await client.chat_postMessage(channel=CHANNEL, text="two")
    response = raised.value.response
    assert (response.status_code, response["error"]) == (429, "ratelimited")
    assert {k.lower(): v for k, v in response.headers.items()}["retry-after"] == "1"
    await asyncio.sleep(1.05)
    await client.chat_postMessage(channel=CHANNEL, text="three")
    assert fake.texts(CHANNEL) == ["one", "three"]


async def test_reactions_answer_like_slack(fake: FakeSlack, client: AsyncWebClient) -> None:
    ts = fake.user_message(CHANNEL, HUMAN, "hello")["ts"]
    await client.reactions_add(channel=CHANNEL, timestamp=ts, name="outbox_tray")
    assert await error_of(client.reactions_add(channel=CHANNEL, timestamp=ts, name="outbox_tray"))
    assert fake.count("reactions.add", error="already_reacted") == 1
    assert await error_of(client.reactions_add(channel=CHANNEL, timestamp=ts, name=":x:")) == (
        200,
        "invalid_name",
    )
    assert await error_of(client.reactions_remove(channel=CHANNEL, timestamp=ts, name="x")) == (
        200,
        "no_reaction",
    )
    await client.reactions_remove(channel=CHANNEL, timestamp=ts, name="outbox_tray")
    assert fake.reactions(CHANNEL, ts) == []


async def test_file_upload_v2_takes_three_steps(fake: FakeSlack, client: AsyncWebClient) -> None:
    parent = (await client.chat_postMessage(channel=CHANNEL, text="thread"))["ts"]
    data = bytes(range(256)) * 3
    done = await client.files_upload_v2(
        channel=CHANNEL, thread_ts=parent, filename="pic.jpg", file=data, title="pic.jpg"
    )
    [upload] = fake.uploads(CHANNEL, parent)
    assert (done["file"]["id"], upload.data) == (upload.id, data)
    assert [c.method for c in fake.calls][-2:] == [
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    ]
    info = await client.files_info(file=upload.id)
    assert info["file"]["size"] == len(data)
    assert await error_of(client.files_completeUploadExternal(files=[{"id": "FNOPE"}])) == (
        200,
        "file_not_found",
    )
    assert fake.violations == []


async def test_events_are_signed_and_retried_until_the_app_answers_2xx(fake: FakeSlack) -> None:
    seen: list[tuple[str | None, bool, dict[str, Any]]] = []
    verifier = SignatureVerifier(fake.signing_secret)

    async def app(request: Request) -> Response:
        body = await request.body()
        valid = verifier.is_valid_request(body, dict(request.headers))
        seen.append((request.headers.get("x-slack-retry-num"), valid, json.loads(body)))
        return Response(status_code=500 if len(seen) < 3 else 200)

    async with serve(Starlette(routes=[Route("/events", app, methods=["POST"])])) as url:
        fake.request_url = f"{url}/events"
        fake.user_message(CHANNEL, HUMAN, "hello")
        await fake.wait_for(lambda: len(fake.deliveries) == 1)
    assert [(retry, valid) for retry, valid, _ in seen] == [(None, True), ("1", True), ("2", True)]
    assert len({body["event_id"] for _, _, body in seen}) == 1
    assert fake.deliveries[0].attempts == [500, 500, 200]
    assert seen[0][2]["event"]["text"] == "hello"


async def test_an_event_not_answered_in_time_is_retried_while_the_first_request_runs(
    fake: FakeSlack,
) -> None:
    seen: list[tuple[str | None, str | None]] = []
    retried = asyncio.Event()

    async def app(request: Request) -> Response:
        seen.append(
            (request.headers.get("x-slack-retry-num"), request.headers.get("x-slack-retry-reason"))
        )
        if len(seen) == 1:
            await retried.wait()  # still at work on the first one when Slack tries again
        else:
            retried.set()
        return Response(status_code=200)

    async with serve(Starlette(routes=[Route("/events", app, methods=["POST"])])) as url:
        fake.request_url = f"{url}/events"
        fake.user_message(CHANNEL, HUMAN, "hello")
        await fake.wait_for(lambda: len(fake.deliveries) == 1)
    assert seen == [(None, None), ("1", "http_timeout")]
    assert fake.deliveries[0].attempts == ["timeout", 200]


async def test_socket_mode_hands_out_a_websocket_and_redelivers_unacked_envelopes(
    fake: FakeSlack,
) -> None:
    web = AsyncWebClient(base_url=fake.api_url)
    socket = SocketModeClient(
        app_token=fake.app_token, web_client=web, auto_reconnect_enabled=False
    )
    received: list[SocketModeRequest] = []

    async def listener(client: SocketModeClient, request: SocketModeRequest) -> None:
        received.append(request)
        if len(received) > 1:  # the first one is "lost": never acknowledged
            await client.send_socket_mode_response(SocketModeResponse(request.envelope_id))

    socket.socket_mode_request_listeners.append(listener)  # type: ignore[arg-type]
    await socket.connect()
    try:
        await fake.wait_for(lambda: fake.socket_connected)
        fake.user_message(CHANNEL, HUMAN, "over the socket")
        await fake.wait_for(lambda: len(fake.deliveries) == 1)
    finally:
        await socket.close()
    assert [r.retry_attempt for r in received] == [0, 1]
    assert received[1].payload["event"]["text"] == "over the socket"
    assert fake.deliveries[0].attempts == ["timeout", "ack"]
    assert fake.count("apps.connections.open") == 1
