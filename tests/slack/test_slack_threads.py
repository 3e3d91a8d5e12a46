"""Slack threads: one per number, kept across a restart, renamed, replaced when deleted; media."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from slack_support import CHANNEL, SlackHarness, start_slack, world

from connectors.chat.slack.fake import FakeSlack


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with world() as fake:
        yield fake


@pytest.fixture
async def bridge(slack: FakeSlack, start_bridge: Callable[..., Any]) -> SlackHarness:
    return await start_slack(start_bridge, slack)


async def test_first_sms_opens_a_thread_and_later_ones_reuse_it_across_a_restart(
    slack: FakeSlack, start_bridge: Callable[..., Any]
) -> None:
    first = await start_slack(start_bridge, slack)
    await first.sms("before restart", alias="Taylor")
    await slack.wait_for(
        lambda: len(first.parents()) == 1 and first.thread(first.parents()[0]["ts"])
    )
    await first.idle()
    await first.bridge.stop()
    second = await start_slack(start_bridge, slack)
    await second.sms("after restart")
    [parent] = second.parents()
    await slack.wait_for(lambda: len(second.thread(parent["ts"])) == 2)
    assert parent["text"] == "Taylor (+1 555-123-4567)"
    assert second.thread(parent["ts"]) == ["before restart", "after restart"]
    assert len(second.parents()) == 1  # never a second thread, and history was never searched
    assert slack.count("conversations.replies") == 0


async def test_two_sms_arriving_together_from_a_new_number_open_one_thread(
    bridge: SlackHarness, slack: FakeSlack
) -> None:
    await asyncio.gather(bridge.sms("one"), bridge.sms("two"))
    await slack.wait_for(lambda: len(slack.texts(CHANNEL)) == 3)
    [parent] = bridge.parents()
    assert parent["text"] == "+1 555-123-4567"
    assert sorted(bridge.thread(parent["ts"])) == ["one", "two"]


async def test_a_thread_is_renamed_when_the_gateway_names_the_number(
    bridge: SlackHarness, slack: FakeSlack
) -> None:
    ts = await bridge.thread_for("hi")
    await bridge.sms("it's Taylor", alias="Taylor")
    await slack.wait_for(lambda: len(bridge.thread(ts)) == 2)
    [parent] = bridge.parents()
    assert parent["ts"] == ts
    assert parent["text"] == "Taylor (+1 555-123-4567)"
    assert slack.count("chat.update") == 1


@pytest.mark.parametrize("tombstone", [False, True], ids=["deleted", "tombstone"])
async def test_a_parent_deleted_by_a_person_starts_a_fresh_thread(
    bridge: SlackHarness, slack: FakeSlack, tombstone: bool
) -> None:
    old = await bridge.thread_for("first")
    slack.user_delete(CHANNEL, old, tombstone=tombstone)
    await bridge.settled()
    await bridge.sms("second")
    await slack.wait_for(
        lambda: any(
            bridge.thread(p["ts"]) == ["second"] for p in bridge.parents() if p["ts"] != old
        )
    )
    new = next(p["ts"] for p in bridge.parents() if p["ts"] != old)
    await bridge.sms("third")
    await slack.wait_for(lambda: bridge.thread(new) == ["second", "third"])
    assert bridge.thread(old) == ["first"]


async def test_an_inbound_mms_image_is_uploaded_into_the_thread(
    bridge: SlackHarness, slack: FakeSlack
) -> None:
    ts = await bridge.thread_for("hello")
    picture = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    await bridge.mms(picture)
    await slack.wait_for(lambda: len(slack.uploads(CHANNEL, ts)) == 1)
    [upload] = slack.uploads(CHANNEL, ts)
    assert (upload.name, upload.data) == ("photo.png", picture)
    assert "see the photo" in bridge.thread(ts)
    assert [c.method for c in slack.calls if c.method.startswith("files.")] == [
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    ]


async def test_sms_text_is_posted_as_written_not_as_slack_formatting(
    bridge: SlackHarness, slack: FakeSlack
) -> None:
    text = "*50% off* _today_ ~not tomorrow~ `code`"
    ts = await bridge.thread_for(text)
    assert bridge.thread(ts) == [text]
    posts = [c.params for c in slack.calls if c.method == "chat.postMessage"]
    assert len(posts) == 2  # the thread's first message and the SMS
    # Slack would render *, _, ~ and ` as formatting unless told the text is plain.
    assert all(p.get("mrkdwn") in (False, "false", "0") for p in posts), posts


async def test_a_parent_deleted_while_another_instance_takes_the_event_starts_a_fresh_thread(
    slack: FakeSlack, start_bridge: Callable[..., Any], pg_url: str
) -> None:
    owner = await start_slack(start_bridge, slack, store_url=pg_url)  # posts into the channel
    standby = await start_slack(start_bridge, slack, store_url=pg_url)  # Slack's events go here
    assert owner.bridge.keeper is not None and "chat:team" in owner.bridge.keeper.held
    old = await owner.thread_for("first")
    slack.user_delete(CHANNEL, old, tombstone=True)
    await standby.settled()
    await owner.sms("second")
    await slack.wait_for(
        lambda: any(
            bridge_thread == ["second"]
            for bridge_thread in (owner.thread(p["ts"]) for p in owner.parents() if p["ts"] != old)
        )
    )
    assert owner.thread(old) == ["first"]
