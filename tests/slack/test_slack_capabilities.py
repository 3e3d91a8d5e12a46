"""What Slack can and cannot do, as the core sees it: no closing of threads, answers to a slash
command only its author sees, and reactions paced (and held) apart from posting."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import sqlalchemy as sa
from slack_support import AGENT_ID, CHANNEL, SlackHarness, start_slack, world

from bridge.ports import ClosesThreads, ManagesThreads, PostsPrivately, ShowsStatus
from bridge.store.records import JobKind
from bridge.store.schema import chat_jobs, chat_messages, outbox
from connectors.chat.slack.fake import FakeSlack

CUSTOMER = "+15551234567"
WRITES = ("chat.", "reactions.", "files.")


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with world() as fake:
        yield fake


@pytest.fixture
async def bridge(slack: FakeSlack, start_bridge: Callable[..., Any]) -> SlackHarness:
    return await start_slack(start_bridge, slack)


def _store(bridge: SlackHarness) -> Any:
    store = bridge.harness.bridge.store
    assert store is not None
    return store


async def test_slack_threads_cannot_be_closed_so_a_close_job_is_simply_done(
    bridge: SlackHarness, slack: FakeSlack
) -> None:
    platform = bridge.harness.bridge.chats["team"]
    assert isinstance(platform, ManagesThreads | ShowsStatus | PostsPrivately)
    assert not isinstance(platform, ClosesThreads)
    ts = await bridge.thread_for()
    store = _store(bridge)
    conversation = await store.threads.conversation("office", CUSTOMER)
    before = len([c for c in slack.calls if c.method.startswith(WRITES)])
    async with store.shared.write() as tx:
        await tx.add_jobs(
            [
                {"chat": "team", "kind": kind.value, "conversation_id": conversation.id}
                for kind in (JobKind.CLOSE, JobKind.REOPEN)
            ]
        )
    await bridge.settled()
    async with store.shared.read() as conn:
        rows = (await conn.execute(sa.select(chat_jobs.c.kind, chat_jobs.c.state))).all()
    assert {(r.kind, r.state) for r in rows if r.kind in ("close", "reopen")} == {
        ("close", "done"),
        ("reopen", "done"),
    }
    assert len([c for c in slack.calls if c.method.startswith(WRITES)]) == before
    await bridge.sms("still here")  # the thread goes on as before
    await slack.wait_for(lambda: bridge.thread(ts) == ["hi", "still here"])


async def test_a_slash_command_is_answered_privately_and_runs_once(
    bridge: SlackHarness, slack: FakeSlack
) -> None:
    """A slash command is private by a typed field: its answers go by chat.postEphemeral to
    its author, it carries its trigger id as it is, and a redelivery sends nothing twice."""
    wrong = slack.slash_command(CHANNEL, AGENT_ID, "/sms", "0470 hello")
    await slack.wait_for(lambda: len(slack.ephemerals) == 1)
    [answer] = slack.ephemerals
    assert (answer.user, answer.thread_ts) == (AGENT_ID, None)
    assert "not a phone number" in answer.text
    good = slack.slash_command(CHANNEL, AGENT_ID, "/sms", "+1 555 987 6543 Your payload is ready")
    await bridge.gateway.wait_for(lambda: len(bridge.gateway.sent) == 1)
    for command in [d for d in slack.deliveries if d.kind == "slash_commands"]:
        slack.redeliver(command)  # what a retried request would bring again
    await slack.wait_for(
        lambda: sum(len(d.attempts) for d in slack.deliveries if d.kind == "slash_commands") == 4
    )
    await bridge.settled()
    assert len(bridge.gateway.sent) == 1
    assert len(slack.ephemerals) == 1
    assert slack.texts(CHANNEL, None) == ["+1 555-987-6543"]  # the number's thread, nothing else
    store = _store(bridge)
    async with store.shared.read() as conn:
        origins = (await conn.execute(sa.select(outbox.c.origin_message_id))).scalars().all()
        shown = (await conn.execute(sa.select(chat_messages.c.message_id))).scalars().all()
    assert origins == [good["trigger_id"]]
    # Nobody else sees the command: no status can show on it, so none is tried.
    assert good["trigger_id"] not in shown and wrong["trigger_id"] not in shown
    assert all(c.params.get("timestamp") in shown for c in slack.calls if "reactions" in c.method)


async def test_a_429_on_reactions_holds_only_reactions_and_posting_goes_on(
    bridge: SlackHarness, slack: FakeSlack
) -> None:
    ts = await bridge.thread_for()
    slack.fail_next("reactions.add", "ratelimited", status=429, retry_after=3)
    reply = slack.user_message(CHANNEL, AGENT_ID, "answer", thread_ts=ts)
    await slack.wait_for(lambda: slack.count("reactions.add", error="ratelimited") == 1)
    # Another number's SMS (this thread's own posts keep their order behind the status).
    await bridge.sms("meanwhile", number="+15550002222")
    await slack.wait_for(lambda: "meanwhile" in slack.texts(CHANNEL))
    assert slack.reactions(CHANNEL, reply["ts"]) == []  # reactions wait for Retry-After
    await slack.wait_for(
        lambda: slack.reactions(CHANNEL, reply["ts"]) == ["hourglass_flowing_sand"], timeout=10
    )
    adds = [c.at for c in slack.calls if c.method == "reactions.add"]
    [posted] = [
        c.at
        for c in slack.calls
        if c.method == "chat.postMessage" and c.params.get("text") == "meanwhile"
    ]
    assert adds[0] < posted < adds[0] + 2.5  # posting went on at once
    assert adds[1] - adds[0] >= 2.9  # the core's pacer held reactions for the 3 s
