"""``smsbridge demo``: the whole round trip against the built-in fake gateway and fake Telegram."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from bridge.app import Bridge
from bridge.config import parse_config
from connectors.chat.telegram.fake import FakeTelegram
from connectors.sms.smsmobileapi.fake import FakeSmsMobileApi

GROUP = -1001234567890
AGENT, STRANGER = 111, 666
CUSTOMER = "+15551234567"


def _say(step: str, text: str) -> None:
    print(f"{step:>10}  {text}", flush=True)


async def run_demo() -> int:
    """Run the story; 0 when every step happened as it should."""
    with tempfile.TemporaryDirectory(prefix="smsbridge-demo-") as tmp:
        async with FakeSmsMobileApi() as gateway, FakeTelegram() as telegram:
            telegram.add_forum(GROUP, "Support desk")
            config = parse_config(
                {
                    "store": {"url": f"sqlite:///{Path(tmp) / 'demo.db'}"},
                    "server": {"host": "127.0.0.1", "port": 0},
                    "gateways": [
                        {
                            "name": "office",
                            "type": "smsmobileapi",
                            "api_key": gateway.api_key,
                            "base_url": gateway.base_url,
                            "receive": "webhook",
                            "webhook_secret": gateway.webhook_secret,
                        }
                    ],
                    "chats": [
                        {
                            "name": "support",
                            "type": "telegram",
                            "bot_token": telegram.token,
                            "chat_id": GROUP,
                            "base_url": telegram.base_url,
                            "allowed_user_ids": [AGENT],
                            "poll_timeout": 1,
                        }
                    ],
                    "routes": [{"gateway": "office", "chat": "support"}],
                },
                environ={},
            )
            bridge = Bridge(config)
            await bridge.start()
            try:
                return await _story(bridge, gateway, telegram)
            finally:
                await bridge.stop()


async def _story(bridge: Bridge, gateway: FakeSmsMobileApi, telegram: FakeTelegram) -> int:
    hook = f"http://127.0.0.1:{bridge.port}/webhooks/sms/office"
    print("smsbridge demo: a fake SMSMobileAPI phone and a fake Telegram forum, on loopback.\n")

    sms = gateway.receive_sms(CUSTOMER, "Hi! Is my order #1042 ready?", alias="Taylor")
    answer = await gateway.deliver_received_v2(hook, sms)
    _say(
        "SMS in",
        f"{CUSTOMER} texts the office phone; the signed webhook gets HTTP {answer.status_code}",
    )
    await telegram.wait_for(lambda: bool(telegram.sent_messages(GROUP)), timeout=10)
    topic = telegram.topics(GROUP)[0]
    _say("Telegram", f"topic “{topic.name}” opened; the SMS is posted in it")

    again = await gateway.deliver_received_v2(hook, sms)
    await asyncio.sleep(0.3)
    posts = len(telegram.sent_messages(GROUP))
    _say(
        "redelivery",
        f"the gateway sends the same webhook again: HTTP {again.status_code}, still {posts} post",
    )

    reply = telegram.user_message(
        GROUP, AGENT, "Yes, pick it up after 3 pm.", thread_id=topic.thread_id, first_name="Sam"
    )
    await gateway.wait_for(lambda: bool(gateway.sent), timeout=10)
    out = gateway.sent[0]
    _say(
        "reply", f"Sam answers in the topic; the gateway sends “{out.message}” to {out.recipients}"
    )
    await telegram.wait_for(
        lambda: telegram.reaction(GROUP, reply["message_id"]) == ["✍"], timeout=10
    )
    _say("status", "✍ on Sam's message: queued at the phone")

    await gateway.deliver_status_v2(hook, out.guid, "sms.sent")
    await telegram.wait_for(
        lambda: telegram.reaction(GROUP, reply["message_id"]) == ["👌"], timeout=10
    )
    _say("status", "👌 on Sam's message: the phone sent it")

    before = len(gateway.sent)
    telegram.user_message(
        GROUP, STRANGER, "let me text them too", thread_id=topic.thread_id, first_name="Eve"
    )
    await telegram.wait_for(
        lambda: any("not allowed" in (m.get("text") or "") for m in telegram.sent_messages(GROUP)),
        timeout=10,
    )
    _say(
        "refused",
        f"Eve is not on allowed_user_ids: a refusal, and {len(gateway.sent) - before} SMS sent",
    )

    ok, report = await bridge.health()
    _say("healthz", f"{report['status']}; backlog {report['store']['backlog']}")
    print("\nEverything above went through the real bridge: webhook -> SQLite -> Telegram worker,")
    print("and Telegram -> outbox -> gateway worker. Run `smsbridge run --config ...` for real.")
    return 0 if ok else 1
