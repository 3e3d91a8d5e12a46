"""Inbound MMS through the real bridge: files land in the number's topic, after its text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import GROUP
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from test_smsgate_e2e import SPEC, running
from test_smsgateway24_e2e import HOOK_TOKEN as SG24_TOKEN
from test_smsgateway24_e2e import running as sg24_running

from bridge.testing.fake_harness import free_port
from bridge.testing.server import serve
from connectors.chat.telegram.fake import FakeTelegram
from connectors.sms.smsgate.fake import FakeSmsGate

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
PDF = b"%PDF-1.4\n" + b"0" * 2048
NOT_FOUND = "media server answered HTTP 404"


def posted(telegram: FakeTelegram) -> list[tuple[str, Any]]:
    """What the bot posted in the group, in order: ("text", str) / ("photo"|"document", bytes)."""
    shown: list[tuple[str, Any]] = []
    for message in telegram.sent_messages(GROUP):
        if "photo" in message:
            shown.append(("photo", telegram.file_bytes(message["photo"][-1]["file_id"])))
        elif "document" in message:
            document = message["document"]
            shown.append(
                (f"document:{document.get('file_name')}", telegram.file_bytes(document["file_id"]))
            )
        else:
            shown.append(("text", message.get("text")))
    return shown


async def test_an_mms_sent_inline_is_uploaded_into_the_topic(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    port = free_port()
    server = {"port": port, "public_url": f"http://127.0.0.1:{port}"}
    async with (
        FakeSmsGate("cloud", spec=SPEC) as fake,
        running(
            tmp_path, fake, telegram, server, receive="webhook", register_webhooks=True
        ) as harness,
    ):
        row = fake.receive_mms(
            "+15551234567",
            "Photo of the damage",
            [("damage.png", "image/png", PNG), ("invoice.pdf", "application/pdf", PDF)],
        )
        [answer] = await fake.deliver_received(row, event_id="mms-1")
        assert answer.status_code == 202
        [again] = await fake.deliver_received(row, event_id="mms-1")
        assert again.status_code == 200
        await telegram.wait_for(lambda: len(posted(telegram)) == 3)
        await harness.idle()
        assert posted(telegram) == [
            ("text", "Photo of the damage"),
            ("photo", PNG),
            ("document:invoice.pdf", PDF),
        ]
        [topic] = harness.topics()
        assert all(
            m.get("message_thread_id") == topic.thread_id for m in telegram.sent_messages(GROUP)
        )
        assert telegram.violations == []


async def test_a_picture_only_mms_fetched_from_the_phone_is_the_whole_message(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    # Local mode polls the inbox, which lists attachments by URL: the bridge fetches them with
    # the phone's credentials when it posts (the phone says octet-stream; the MMS said PNG).
    async with (
        FakeSmsGate("local", spec=SPEC) as fake,
        running(tmp_path, fake, telegram, {}, receive="poll", poll_interval=0.2) as harness,
    ):
        fake.receive_mms("+15551234567", "", [("cat.png", "image/png", PNG)])
        await telegram.wait_for(lambda: len(posted(telegram)) == 1)
        await harness.idle()
        assert posted(telegram) == [("photo", PNG)]
        assert len(harness.topics()) == 1
        assert any("/attachments/" in r.path for r in fake.requests)
        assert telegram.violations == []


async def test_a_picture_at_a_public_link_is_downloaded_and_uploaded(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    # SmsGateway24 hands WhatsApp images out as public links; the bridge fetches them when it
    # posts. A link that is gone becomes a line saying so, and nothing else is held up.
    async def image(request: Request) -> Response:
        if request.path_params["name"] != "cat.png":
            return Response("no such key", status_code=404)
        return Response(PNG, media_type="image/png")

    storage = Starlette(routes=[Route("/media/{name}", image)])
    async with (
        serve(storage) as media,
        sg24_running(tmp_path, telegram, receive="webhook") as (harness, fake),
    ):
        hook = f"{harness.base}/webhooks/sms/sg24/{SG24_TOKEN}"
        cat = fake.receive_sms("+15551234567", "", img_url=f"{media}/media/cat.png")
        assert (await fake.deliver_incoming(hook, cat)).status_code == 202
        await telegram.wait_for(lambda: len(posted(telegram)) == 1)
        gone = fake.receive_sms("+15551234567", "", img_url=f"{media}/media/gone.png")
        assert (await fake.deliver_incoming(hook, gone)).status_code == 202
        await telegram.wait_for(lambda: len(posted(telegram)) == 2)
        await harness.idle()
        assert posted(telegram) == [
            ("photo", PNG),
            (
                "text",
                "📎 gone.png (image/png) could not be fetched: media server answered HTTP 404",
            ),
        ]
        assert len(harness.topics()) == 1
        assert telegram.violations == []
