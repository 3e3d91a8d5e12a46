"""Slack's added latency: SMS webhook -> chat.postMessage; signed event -> the gateway's send."""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from typing import Any

from bench.common import TOKEN, bridge_process, free_port, percentile, workdir
from connectors.chat.slack.fake import FakeSlack
from connectors.sms.smsmobileapi.fake import FakeSmsMobileApi

CHANNEL = "C0BENCH"
AGENT = "U0BENCHAGENT"
WARMUP = 50
FAST = {"messages": 100000, "seconds": 1}


def config(db: Any, port: int, gateway: FakeSmsMobileApi, slack: FakeSlack) -> dict[str, Any]:
    return {
        "store": {"url": f"sqlite:///{db}"},
        "server": {"host": "127.0.0.1", "port": port},
        "log_level": "WARNING",
        "gateways": [
            {
                "name": "office",
                "type": "smsmobileapi",
                "api_key": gateway.api_key,
                "base_url": gateway.base_url,
                "receive": "webhook",
                "webhook_token": TOKEN,
                "webhook_secret": gateway.webhook_secret,
                "status_poll_interval": 3600,
            }
        ],
        "chats": [
            {
                "name": "team",
                "type": "slack",
                "bot_token": slack.bot_token,
                "signing_secret": slack.signing_secret,
                "channel": CHANNEL,
                "base_url": slack.api_url,
                # For measuring the bridge itself; Slack's 1/s per channel would dominate.
                "pacing": {"channel": FAST, "reactions": FAST},
            }
        ],
        "routes": [{"gateway": "office", "chat": "team"}],
    }


def report(label: str, values: list[float]) -> None:
    print(
        f"    {label:<34} n={len(values):<5} p50 {percentile(values, 50):6.1f}"
        f"  p99 {percentile(values, 99):6.1f}  max {max(values):6.1f}"
    )


async def steady(rate: float, total: int, make: Any) -> None:
    """Start ``make(i)`` at a steady rate, whatever the answers (an open loop)."""
    start = time.monotonic()
    tasks = []
    for index in range(total):
        delay = start + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(make(index)))
    await asyncio.gather(*tasks)


async def main(rate: float, seconds: float, numbers: int, reply_rate: float) -> None:
    total = int(rate * seconds)
    replies_total = int(reply_rate * seconds)
    with workdir() as tmp:
        async with FakeSmsMobileApi() as gateway, FakeSlack() as slack:
            slack.add_channel(CHANNEL, "bench")
            slack.add_user(AGENT, "Bench Agent")
            port = free_port()
            hook = f"http://127.0.0.1:{port}/webhooks/sms/office"
            async with bridge_process(config(tmp / "bench.db", port, gateway, slack), tmp):
                slack.request_url = f"http://127.0.0.1:{port}/webhooks/slack/team"
                for index in range(WARMUP):  # connections, caches, the agent's name: not measured
                    sms = gateway.receive_sms(f"+1666{index % 10:07d}", f"warm-{index}")
                    await gateway.deliver_received_v2(hook, sms)
                await slack.wait_for(lambda: len(slack.texts(CHANNEL)) >= WARMUP + 10, 60)
                warm = slack.parents(CHANNEL)[0]["ts"]
                message = slack.user_message(CHANNEL, AGENT, "warm", thread_ts=warm)
                await gateway.wait_for(lambda: len(gateway.sent) == 1, 30)
                del message
                gc.collect()
                gc.freeze()
                gc.disable()  # the fakes' own collections would count as bridge latency

                inbound_at: dict[str, float] = {}

                async def inbound(index: int) -> None:
                    sms = gateway.receive_sms(f"+1555{index % numbers:07d}", f"lat-{index}")
                    inbound_at[sms.message] = time.monotonic()
                    response = await gateway.deliver_received_v2(hook, sms)
                    assert response.status_code == 202, response.text

                await steady(rate, total, inbound)
                expected = WARMUP + 10 + total + numbers
                await slack.wait_for(lambda: len(slack.texts(CHANNEL)) >= expected, 120)
                threads = [p["ts"] for p in slack.parents(CHANNEL)[-numbers:]]
                await slack.wait_for(lambda: slack.pending() == 0, 60)

                reply_at: dict[str, float] = {}

                async def reply(index: int) -> None:
                    text = f"rep-{index}"
                    message = slack.user_message(
                        CHANNEL, AGENT, text, thread_ts=threads[index % numbers], deliver=False
                    )
                    envelope = slack.event_of(CHANNEL, message)
                    reply_at[text] = time.time()
                    response = await slack.post_to_app(slack.request_url or "", envelope)
                    assert response.status_code == 200, response.text

                await steady(reply_rate, replies_total, reply)
                await gateway.wait_for(lambda: len(gateway.sent) >= replies_total + 1, 120)
                gc.enable()
            posted = {
                c.params["text"]: c.at
                for c in slack.calls
                if c.method == "chat.postMessage" and c.status == 200 and c.error is None
            }
            sent = {s.message: s.at for s in gateway.sent}
    first = {f"lat-{i}" for i in range(numbers)}  # these also opened their thread
    old = [(posted[t] - at) * 1000 for t, at in inbound_at.items() if t not in first]
    new = [(posted[t] - at) * 1000 for t, at in inbound_at.items() if t in first]
    replies = [(sent[t] - at) * 1000 for t, at in reply_at.items()]
    print(
        f"slack benchmark: {total} SMS at {rate:g}/s, then {replies_total} replies at"
        f" {reply_rate:g}/s, {numbers} numbers, SQLite"
    )
    print("  (ms)")
    report("SMS webhook -> chat.postMessage", old)
    report("  ... that opened a thread", new)
    report("signed event -> gateway send", replies)
    print(f"  spec violations at the fake: {len(slack.violations)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--numbers", type=int, default=25)
    # People answer far slower than SMS arrive; one gateway sends its SMS one at a time.
    parser.add_argument("--reply-rate", type=float, default=10.0)
    args = parser.parse_args()
    asyncio.run(main(args.rate, args.seconds, args.numbers, args.reply_rate))
