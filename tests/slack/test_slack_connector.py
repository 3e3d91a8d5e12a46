"""The Slack connector on its own against the fake: config, errors, reactions, translation."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest import HOOK_TOKEN
from slack_support import AGENT_ID, CHANNEL, slack_section, started_chat, world

from bridge.config import parse_config
from bridge.errors import ConfigError, RateLimited, Retryable, Terminal, ThreadGone, Unavailable
from bridge.models import ChatMessage, Status
from bridge.pacing import Pacer
from bridge.ports import CallKind
from connectors.chat.slack.client import SlackChat, SlackConfig
from connectors.chat.slack.events import plain_text
from connectors.chat.slack.fake import FakeSlack


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with world() as fake:
        yield fake


@pytest.fixture
async def seen() -> list[ChatMessage]:
    return []


@pytest.fixture
async def chat(slack: FakeSlack, seen: list[ChatMessage]) -> AsyncIterator[SlackChat]:
    async with started_chat(slack, seen) as platform:
        yield platform


def config(slack: FakeSlack, *chats: dict[str, Any]) -> Any:
    gateway = {"name": "office", "type": "smsmobileapi", "api_key": "k" * 16}
    gateway.update(receive="webhook", webhook_token=HOOK_TOKEN)
    routes = [{"gateway": "office", "chat": c["name"]} for c in chats]
    data = {"gateways": [gateway], "chats": list(chats), "routes": routes}
    return parse_config(data, environ={})


def test_config_errors_name_the_key_and_never_echo_a_secret(slack: FakeSlack) -> None:
    cases = {
        "bot_token": ("xoxp-user-token-secret", "must be a bot token"),
        "app_token": ("xoxb-not-an-app-token", "must be an app-level token"),
        "channel": ("#support", "should match pattern"),
        "allowed_user_ids": (["alice"], "is not a Slack user id"),
    }
    for key, (value, message) in cases.items():
        with pytest.raises(ConfigError) as raised:
            config(slack, slack_section(slack, **{key: value}))
        assert f"chats[0].{key}" in str(raised.value) and message in str(raised.value)
        assert "secret" not in str(raised.value).replace("signing_secret", "")
    with pytest.raises(ConfigError, match=r"set signing_secret \(Events API\) or app_token"):
        config(slack, slack_section(slack, signing_secret=None))
    with pytest.raises(ConfigError, match="uses the same Slack app as chat 'team'"):
        config(slack, slack_section(slack), slack_section(slack, "other"))


async def test_slack_errors_become_the_bridges(chat: SlackChat, slack: FakeSlack) -> None:
    parent = await chat.open_thread("+1 555-123-4567")
    slack.fail_next("chat.postMessage", "ratelimited", status=429, retry_after=7)
    with pytest.raises(RateLimited) as limited:
        await chat.post(parent, "x")
    assert limited.value.retry_after == 7.0 and not isinstance(limited.value, Unavailable)
    slack.fail_next("chat.postMessage", "internal_error", status=503)
    with pytest.raises(Retryable):
        await chat.post(parent, "x")
    for down in ("channel_not_found", "not_in_channel", "is_archived", "invalid_auth"):
        slack.fail_next("chat.postMessage", down)
        with pytest.raises(Unavailable, match=down):
            await chat.post(parent, "x")
    slack.fail_next("chat.postMessage", "restricted_action")
    with pytest.raises(Terminal) as terminal:
        await chat.post(parent, "x")
    assert terminal.value.raw_status == "restricted_action"
    slack.fail_next("chat.update", "message_not_found")
    with pytest.raises(ThreadGone):
        await chat.rename_thread(parent, "Taylor (+1 555-123-4567)")
    assert slack.texts(CHANNEL) == ["+1 555-123-4567"]  # nothing got through


async def test_a_revoked_token_shows_in_health_without_the_token(slack: FakeSlack) -> None:
    slack.revoked = True
    platform = SlackChat(SlackConfig.model_validate(slack_section(slack)), None)

    async def ignore(_message: ChatMessage) -> None:
        return None

    await platform.start(ignore)
    try:
        await slack.wait_for(lambda: platform.health()["state"] == "down")
        report = json.dumps(platform.health())
        assert "token_revoked" in report
        assert slack.bot_token not in report and slack.signing_secret not in report
    finally:
        await platform.stop()


async def test_status_reactions_replace_each_other_even_after_a_restart(
    chat: SlackChat, slack: FakeSlack, seen: list[ChatMessage]
) -> None:
    parent = await chat.open_thread("+1 555-123-4567")
    reply = slack.user_message(CHANNEL, AGENT_ID, "hello", thread_ts=parent)["ts"]
    await chat.show_status(reply, Status.QUEUED)
    await chat.show_status(reply, Status.QUEUED)  # a retried job: already shown
    await chat.show_status(reply, Status.SENT)
    assert slack.reactions(CHANNEL, reply) == ["outbox_tray"]
    restarted = SlackChat(chat.config, None)
    await restarted.start(seen.append)  # type: ignore[arg-type]
    try:
        await restarted.show_status(reply, Status.DELIVERED)  # it never saw the earlier ones
        assert slack.reactions(CHANNEL, reply) == ["white_check_mark"]
        await restarted.show_status(reply, Status.DELIVERED)
    finally:
        await restarted.stop()
    assert slack.count("reactions.add", error="already_reacted") == 0
    assert slack.count("reactions.remove", error="no_reaction") == 2  # queued, failed: not there


async def test_events_translate_to_chat_messages(
    chat: SlackChat, slack: FakeSlack, seen: list[ChatMessage]
) -> None:
    slack.request_url = "http://127.0.0.1:9/never"  # deliveries below are made by hand
    parent = await chat.open_thread("+1 555-123-4567")
    events = []
    reply = slack.user_message(CHANNEL, AGENT_ID, "hi <@U0SMSBOT> &lt;3", thread_ts=parent)
    events.append(slack.envelope({**reply, "channel": CHANNEL}))
    broadcast = slack.user_message(CHANNEL, AGENT_ID, "to all", thread_ts=parent, broadcast=True)
    events.append(slack.envelope({**broadcast, "channel": CHANNEL}))
    edit = {"type": "message", "subtype": "message_changed", "channel": CHANNEL, "ts": "1.2"}
    edit["message"] = {**reply, "text": "fixed", "edited": {"user": AGENT_ID, "ts": "1.2"}}
    edit["previous_message"] = reply
    events.append(slack.envelope(edit))
    tombstone = {"type": "message", "subtype": "message_changed", "channel": CHANNEL, "ts": "1.3"}
    tombstone["message"] = {"subtype": "tombstone", "ts": parent, "thread_ts": parent}
    events.append(slack.envelope(tombstone))
    for envelope in events:
        body = json.dumps(envelope).encode()
        headers = {k.lower(): v for k, v in slack.signed_headers(body).items()}
        await chat.accept_webhook({**headers, "content-type": "application/json"}, body)
    got = [(m.message_id, m.thread_id, m.text, m.edited, m.deleted, m.user.name) for m in seen]
    assert got == [
        (reply["ts"], parent, "hi @U0SMSBOT <3", False, False, "Alex Agent"),
        (broadcast["ts"], parent, "to all", False, False, "Alex Agent"),
        (reply["ts"], parent, "fixed", True, False, "Alex Agent"),
        (parent, parent, None, False, True, "someone"),
    ]
    assert [m.event_id for m in seen] == [e["event_id"] for e in events]
    with pytest.raises(ThreadGone):
        await chat.post(parent, "into the deleted thread")
    assert slack.count("users.info") == 1  # names are looked up once per person


def test_slack_markup_reads_as_plain_text() -> None:
    assert plain_text("<https://a.io/x|a.io/x> and <mailto:b@c.io|b@c.io>") == "a.io/x and b@c.io"
    assert (
        plain_text("<https://a.io|docs> <!here> <#C1|general>")
        == "docs (https://a.io) @here #general"
    )
    assert plain_text("1 &lt; 2 &amp;&amp; 3 &gt; 2") == "1 < 2 && 3 > 2"


async def test_a_missing_scope_stops_the_chat_only_for_what_every_post_needs(
    chat: SlackChat, slack: FakeSlack
) -> None:
    parent = await chat.open_thread("+1 555-123-4567")
    reply = slack.user_message(CHANNEL, AGENT_ID, "hello", thread_ts=parent)["ts"]
    slack.fail_next("chat.postMessage", "missing_scope")
    with pytest.raises(Unavailable, match="missing_scope"):
        await chat.post(parent, "x")
    slack.fail_next("chat.update", "no_permission")
    with pytest.raises(Unavailable, match="no_permission"):
        await chat.rename_thread(parent, "Taylor (+1 555-123-4567)")
    # Extras: the status, the private notice or the file is given up; the thread goes on.
    slack.fail_next("reactions.add", "missing_scope")
    with pytest.raises(Terminal) as refused:
        await chat.show_status(reply, Status.SENT)
    assert not isinstance(refused.value, Unavailable)
    slack.fail_next("chat.postEphemeral", "missing_scope")
    with pytest.raises(Terminal) as refused:
        await chat.post_private(parent, AGENT_ID, "not allowed")
    assert not isinstance(refused.value, Unavailable)
    slack.fail_next("files.getUploadURLExternal", "no_permission")
    with pytest.raises(Terminal) as refused:
        await chat.post_file(parent, "photo.png", "image/png", b"\x89PNG")
    assert not isinstance(refused.value, Unavailable)


async def test_a_status_is_paced_by_the_core_as_two_reaction_calls(
    slack: FakeSlack, seen: list[ChatMessage]
) -> None:
    """The connector keeps no pacer of its own: ``limits`` tells the core's that a status
    change is two calls to Slack (add one reaction, remove the other), and a 429 names the
    reactions' key, so the core holds reactions only."""
    pacing = {
        "channel": {"messages": 1000, "seconds": 1},
        "reactions": {"messages": 2, "seconds": 1},
    }
    platform = SlackChat(SlackConfig.model_validate(slack_section(slack, pacing=pacing)), None)
    await platform.start(seen.append)  # type: ignore[arg-type]
    pacer = Pacer()
    try:
        parent = await platform.open_thread("+1 555-123-4567")
        replies = [
            slack.user_message(CHANNEL, AGENT_ID, text, thread_ts=parent)["ts"]
            for text in ("hello", "again")
        ]
        assert platform.limits(CallKind.STATUS) == 2 * platform.limits(CallKind.LIGHT)
        for reply in replies:
            for status in (Status.QUEUED, Status.SENT):
                await pacer.acquire(platform.limits(CallKind.STATUS))
                await platform.show_status(reply, status)
        times = [c.at for c in slack.calls if c.method.startswith("reactions.")]
        assert len(times) == 6  # add; add and remove; for each reply
        # Never more than two in any second, as configured.
        assert all(
            later - earlier >= 0.95 for earlier, later in zip(times, times[2:], strict=False)
        )
        slack.fail_next("reactions.add", "ratelimited", status=429, retry_after=9)
        with pytest.raises(RateLimited) as limited:
            await platform.show_status(replies[0], Status.FAILED)
        assert limited.value.key == platform.reactions_key != platform.hold_key
        assert limited.value.retry_after == 9.0
        assert {key for key, _ in platform.limits(CallKind.MESSAGE)} == {platform.hold_key}
    finally:
        await platform.stop()


async def test_bolts_environment_variables_change_nothing(
    slack: FakeSlack, seen: list[ChatMessage], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_CLIENT_ID", "1234.5678")
    monkeypatch.setenv("SLACK_CLIENT_SECRET", "client-secret-from-another-tool")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-another-workspace")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "another-signing-secret")
    platform = SlackChat(SlackConfig.model_validate(slack_section(slack)), None)

    async def collect(message: ChatMessage) -> None:
        seen.append(message)

    await platform.start(collect)
    try:
        app = platform._app  # bolt's app as built: the one thing environment could change
        assert app is not None
        assert (app.oauth_flow, app.installation_store) == (None, None)
        parent = await platform.open_thread("+1 555-123-4567")
        reply = slack.user_message(CHANNEL, AGENT_ID, "hi", thread_ts=parent, deliver=False)
        body = json.dumps(slack.event_of(CHANNEL, reply)).encode()
        headers = {k.lower(): v for k, v in slack.signed_headers(body).items()}
        await platform.accept_webhook({**headers, "content-type": "application/json"}, body)
        assert [m.text for m in seen] == ["hi"]
    finally:
        await platform.stop()
    assert os.environ["SLACK_CLIENT_ID"] == "1234.5678"  # given back as it was
