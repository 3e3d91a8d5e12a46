"""Resident memory of the bridge process after 10,000 bridged messages (in and out)."""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.common import (
    AGENT,
    GROUP,
    blast,
    bridge_config,
    bridge_process,
    free_port,
    plain_webhook,
    rss_mb,
    workdir,
)
from connectors.chat.telegram.fake import FakeLimits, FakeTelegram
from connectors.sms.smsmobileapi.fake import FakeSmsMobileApi


def requests(count: int, numbers: int) -> list[bytes]:
    return [
        plain_webhook(f"+1555{index % numbers:07d}", f"memory {index} " + "x" * 120)
        for index in range(count)
    ]


async def main(inbound: int, replies: int, numbers: int) -> None:
    with workdir() as tmp:
        async with FakeSmsMobileApi() as gateway, FakeTelegram(limits=FakeLimits.off()) as telegram:
            telegram.add_forum(GROUP)
            port = free_port()
            config = bridge_config(tmp / "bench.db", port, gateway, telegram, fast_pacing=True)
            async with bridge_process(config, tmp) as process:
                baseline = rss_mb(process.pid)
                peak = baseline
                start = time.monotonic()
                await blast(port, requests(inbound, numbers), 16)

                def posted() -> int:
                    return len(telegram.sent_messages(GROUP))

                while posted() < inbound:
                    peak = max(peak, rss_mb(process.pid))
                    await asyncio.sleep(0.5)
                topics = {t.name: t.thread_id for t in telegram.topics(GROUP)}
                threads = list(topics.values())
                for index in range(replies):
                    telegram.user_message(
                        GROUP, AGENT, f"reply {index}", thread_id=threads[index % len(threads)]
                    )
                while len(gateway.sent) < replies:
                    peak = max(peak, rss_mb(process.pid))
                    await asyncio.sleep(0.5)
                elapsed = time.monotonic() - start
                await asyncio.sleep(1)
                final = rss_mb(process.pid)
                peak = max(peak, final)
    print(f"memory benchmark: {inbound} SMS in + {replies} replies out over {numbers} numbers")
    print(f"  bridge RSS after start: {baseline:6.1f} MB")
    print(f"  bridge RSS at the end:  {final:6.1f} MB   (peak {peak:.1f} MB)")
    print(f"  all {inbound + replies} messages bridged in {elapsed:.0f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inbound", type=int, default=9000)
    parser.add_argument("--replies", type=int, default=1000)
    parser.add_argument("--numbers", type=int, default=300)
    args = parser.parse_args()
    asyncio.run(main(args.inbound, args.replies, args.numbers))
