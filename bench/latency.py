"""Added latency: signed webhook in -> sendMessage at the fake Telegram, at a steady 50 SMS/s."""

from __future__ import annotations

import argparse
import asyncio
import gc
import time

from bench.common import GROUP, bridge_config, bridge_process, free_port, percentile, workdir
from connectors.chat.telegram.fake import FakeLimits, FakeTelegram
from connectors.sms.smsmobileapi.fake import FakeSmsMobileApi

WARMUP = 100


async def main(rate: float, seconds: float, numbers: int) -> None:
    total = int(rate * seconds)
    with workdir() as tmp:
        async with FakeSmsMobileApi() as gateway, FakeTelegram(limits=FakeLimits.off()) as telegram:
            telegram.add_forum(GROUP)
            port = free_port()
            config = bridge_config(tmp / "bench.db", port, gateway, telegram, fast_pacing=True)
            hook = f"http://127.0.0.1:{port}/webhooks/sms/office"
            async with bridge_process(config, tmp):
                # Both clocks are this process's monotonic clock: the send time below and the
                # fake's arrival time for each sendMessage.
                sent_at: dict[str, float] = {}
                statuses: list[int] = []

                async def send(index: int) -> None:
                    sms = gateway.receive_sms(f"+1555{index % numbers:07d}", f"lat-{index}")
                    sent_at[sms.message] = time.monotonic()
                    response = await gateway.deliver_received_v2(hook, sms)
                    statuses.append(response.status_code)

                # Warm up first (connections, statement caches), as a long-running bridge is:
                # other numbers, not measured. The measured numbers still open their topics.
                for index in range(WARMUP):
                    sms = gateway.receive_sms(f"+1666{index % 10:07d}", f"warm-{index}")
                    await gateway.deliver_received_v2(hook, sms)
                await telegram.wait_for(lambda: len(telegram.sent_messages(GROUP)) >= WARMUP, 60)
                # The fakes keep every message and call; their collector's full passes would stall
                # this process and be counted as bridge latency. Not measured: switch it off here.
                gc.collect()
                gc.freeze()
                gc.disable()
                start = time.monotonic()
                tasks = []
                for index in range(total):
                    # Open loop: a steady rate whatever the answers, as SMS really arrive.
                    delay = start + index / rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    tasks.append(asyncio.create_task(send(index)))
                await asyncio.gather(*tasks)
                await telegram.wait_for(
                    lambda: len(telegram.sent_messages(GROUP)) >= total + WARMUP, 120
                )
                gc.enable()
            arrived = {
                call.params["text"]: call.at
                for call in telegram.calls
                if call.method == "sendMessage" and call.status == 200
            }
    first = {f"lat-{i}" for i in range(numbers)}  # these also had to open their topic
    all_ms = [(arrived[t] - sent_at[t]) * 1000 for t in sent_at]
    new_ms = [(arrived[t] - sent_at[t]) * 1000 for t in sent_at if t in first]
    old_ms = [(arrived[t] - sent_at[t]) * 1000 for t in sent_at if t not in first]
    print(
        f"latency benchmark: {total} SMS at {rate:g}/s over {numbers} new numbers, SQLite"
        f" (after {WARMUP} warm-up SMS from other numbers)"
    )
    print("  webhook sent -> sendMessage at the fake (ms):")
    for label, values in (("all", all_ms), ("existing topic", old_ms), ("new topic", new_ms)):
        print(
            f"    {label:<15} n={len(values):<5} p50 {percentile(values, 50):6.1f}"
            f"  p99 {percentile(values, 99):6.1f}  max {max(values):6.1f}"
        )
    print(f"  webhook answers: {sorted(set(statuses))}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--numbers", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.rate, args.seconds, args.numbers))
