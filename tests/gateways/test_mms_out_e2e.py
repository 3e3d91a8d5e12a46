"""Pictures and files out from Telegram: a photo or document in a number's topic leaves as an
MMS through Twilio, which fetches each file from the bridge's /media/<token> over loopback."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from conftest import AGENT, GROUP, Harness, telegram_section

from bridge.app import Bridge
from bridge.store.schema import outbox_media
from bridge.testing.fake_harness import Started, bridge_config, free_port
from connectors.chat.telegram.fake import FakeTelegram
from connectors.sms.twilio.fake import NUMBER, FakeTwilio

CUSTOMER = "+14155552345"
PHOTO = b"\xff\xd8\xff\xe0" + os.urandom(4000) + b"\xff\xd9"
Start = Callable[..., Awaitable[Harness[FakeTwilio]]]


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio() as fake:
        yield fake


@pytest.fixture
async def start(tmp_path: Path, twilio: FakeTwilio, telegram: FakeTelegram) -> AsyncIterator[Start]:
    """``await start(public=...)``: a bridge on the fakes, reachable at its public URL."""
    async with Started() as started:

        async def run(public: bool = True, private: bool = False) -> Harness[FakeTwilio]:
            port = free_port()
            server: dict[str, Any] = {"port": port}
            if public:
                server["public_url"] = f"http://127.0.0.1:{port}"
            gateway = twilio.section(
                "tw",
                from_number=NUMBER,
                receive="poll",
                poll_interval=0.2,
                status_poll_interval=3600,
            )
            chat = telegram_section(telegram) | ({"chat_id": AGENT} if private else {})
            config = bridge_config(tmp_path, gateway, chat, **server)
            return Harness(await started(Bridge(config)), twilio, telegram)

        yield run


async def topic_of(harness: Harness[FakeTwilio]) -> int:
    harness.gateway.receive_sms(CUSTOMER, "Can you send me the receipt?")
    await harness.telegram.wait_for(lambda: "Can you send me the receipt?" in harness.posts())
    await harness.idle()
    [topic] = harness.topics()
    return int(topic.thread_id)


async def notice(harness: Harness[FakeTwilio], thread: int, words: str) -> None:
    await harness.telegram.wait_for(lambda: any(words in p for p in harness.posts(thread)))
    await harness.settled()
    assert harness.gateway.sent == []


async def test_a_photo_goes_out_as_mms_and_its_link_expires(
    start: Start, twilio: FakeTwilio, telegram: FakeTelegram
) -> None:
    harness = await start()
    thread = await topic_of(harness)
    reply = telegram.user_message(GROUP, AGENT, thread_id=thread, photo=PHOTO, caption="Here it is")
    await twilio.wait_for(lambda: len(twilio.sent) == 1)
    [sent] = twilio.sent
    assert (sent.to, sent.body) == (CUSTOMER, "Here it is")  # the caption is the SMS text
    [url] = sent.media_urls
    assert url.startswith(f"{harness.base}/media/")
    # Twilio fetched it from the bridge: the largest size, byte for byte, as a JPEG.
    [media] = sent.media
    assert (media.content_type, media.data) == ("image/jpeg", PHOTO)
    await telegram.wait_for(lambda: telegram.reaction(GROUP, reply["message_id"]) == ["✍"])

    async with httpx.AsyncClient(trust_env=False) as http:
        again = await http.get(url)
        assert again.status_code == 200 and again.content == PHOTO
        assert again.headers["content-type"] == "image/jpeg"
        unknown = await http.get(f"{harness.base}/media/{'x' * 43}")
        assert unknown.status_code == 404 and set(unknown.json()) == {"error"}
        # 24 h on (the row's expiry moved into the past): refused, and purged by housekeeping.
        store = harness.bridge.store
        assert store is not None
        async with store.shared.write() as tx:
            await tx.conn.execute(outbox_media.update().values(expires_at=time.time() - 1))
        expired = await http.get(url)
        assert expired.status_code == 404 and expired.json()["error"]
    await store.purge(7 * 86400.0)
    async with store.shared.read() as conn:
        [data] = (await conn.execute(sa.select(outbox_media.c.data))).scalars().all()
    assert bytes(data) == b""
    assert len(twilio.sent) == 1 and telegram.violations == []


async def test_a_document_goes_without_a_caption_under_its_name(
    start: Start, twilio: FakeTwilio, telegram: FakeTelegram
) -> None:
    harness = await start()
    thread = await topic_of(harness)
    pdf = b"%PDF-1.4 " + os.urandom(2000)
    posted = telegram.user_message(
        GROUP, AGENT, thread_id=thread, document=("receipt.pdf", "application/pdf", pdf)
    )
    await twilio.wait_for(lambda: len(twilio.sent) == 1)
    [sent] = twilio.sent
    assert sent.body == ""  # Body left out: MediaUrl alone is a message
    assert [(m.content_type, m.data) for m in sent.media] == [("application/pdf", pdf)]
    async with httpx.AsyncClient(trust_env=False) as http:
        served = await http.get(sent.media_urls[0])
    assert served.headers["content-disposition"] == 'inline; filename="receipt.pdf"'
    # The same message again (a replayed update): nothing is fetched or sent twice.
    downloads = telegram.count("getFile")
    telegram.redeliver(GROUP, posted["message_id"])
    await harness.settled()
    assert len(twilio.sent) == 1 and telegram.count("getFile") == downloads


async def test_over_twilios_5_mb_is_refused_before_any_download(
    start: Start, twilio: FakeTwilio, telegram: FakeTelegram
) -> None:
    harness = await start()
    thread = await topic_of(harness)
    big = ("video.mp4", "video/mp4", b"\0" * 5_200_000)
    telegram.user_message(GROUP, AGENT, "the video", thread_id=thread, document=big)
    await notice(harness, thread, "Too large for an MMS")
    assert telegram.count("getFile") == 0  # Telegram said the size: nothing was downloaded


async def test_a_type_twilio_does_not_take_is_refused(
    start: Start, twilio: FakeTwilio, telegram: FakeTelegram
) -> None:
    harness = await start()
    thread = await topic_of(harness)
    program = ("setup.exe", "application/x-msdownload", b"MZ" + os.urandom(100))
    telegram.user_message(GROUP, AGENT, "install this", thread_id=thread, document=program)
    await notice(harness, thread, "cannot send setup.exe (application/x-msdownload) as MMS")


async def test_without_a_public_url_the_notice_says_to_set_it(
    start: Start, twilio: FakeTwilio, telegram: FakeTelegram
) -> None:
    harness = await start(public=False)
    thread = await topic_of(harness)
    telegram.user_message(GROUP, AGENT, thread_id=thread, photo=PHOTO, caption="Here")
    await notice(harness, thread, "set server.public_url")
    async with httpx.AsyncClient(trust_env=False) as http:
        response = await http.get(f"{harness.base}/media/{'x' * 43}")
    assert response.status_code == 404  # not served at all: no file can be queued


async def test_in_a_private_chat_a_photo_replying_to_an_sms_answers_its_number(
    start: Start, twilio: FakeTwilio, telegram: FakeTelegram
) -> None:
    await start(private=True)
    twilio.receive_sms(CUSTOMER, "Which size?")
    await telegram.wait_for(lambda: len(telegram.sent_messages(AGENT)) == 1)
    [header] = telegram.sent_messages(AGENT)
    telegram.user_message(AGENT, AGENT, reply_to=header["message_id"], photo=PHOTO, caption="M")
    await twilio.wait_for(lambda: len(twilio.sent) == 1)
    [sent] = twilio.sent
    assert (sent.to, sent.body, [m.data for m in sent.media]) == (CUSTOMER, "M", [PHOTO])


async def test_files_expired_before_the_send_fail_it_whole(
    start: Start, twilio: FakeTwilio, telegram: FakeTelegram
) -> None:
    harness = await start()
    thread = await topic_of(harness)
    store = harness.bridge.store
    assert store is not None
    twilio.fail_next("create", status=503)  # Twilio down: the MMS waits for its retry
    reply = telegram.user_message(GROUP, AGENT, thread_id=thread, photo=PHOTO, caption="Here")
    await twilio.wait_for(lambda: any(r.status == 503 for r in twilio.requests))
    async with store.shared.write() as tx:
        await tx.conn.execute(outbox_media.update().values(expires_at=time.time() - 1))
    await telegram.wait_for(
        lambda: any("expired before it could be sent" in p for p in harness.posts(thread)), 10
    )
    await telegram.wait_for(lambda: telegram.reaction(GROUP, reply["message_id"]) == ["💔"])
    assert twilio.sent == []  # not the caption alone either


async def test_a_gateway_without_mms_sends_nothing_not_even_the_caption(
    harness: Harness[Any],
) -> None:
    await harness.sms("hello")
    await harness.telegram.wait_for(lambda: "hello" in harness.posts())
    await harness.idle()
    [topic] = harness.topics()
    harness.telegram.user_message(
        GROUP, AGENT, thread_id=topic.thread_id, photo=PHOTO, caption="see attached"
    )
    await harness.telegram.wait_for(
        lambda: any("cannot send pictures or files" in p for p in harness.posts(topic.thread_id))
    )
    await harness.settled()
    assert harness.gateway.sent == []


async def retry(harness: Harness[FakeTwilio], thread: int) -> str:
    """Send /retry in the topic; the bridge's answer to it (a reply to the command)."""
    asked = harness.telegram.user_message(GROUP, AGENT, "/retry", thread_id=thread)
    answer: list[str] = []

    def answered() -> bool:
        answer[:] = [
            m.get("text") or ""
            for m in harness.telegram.sent_messages(GROUP)
            if (m.get("reply_to_message") or {}).get("message_id") == asked["message_id"]
        ]
        return bool(answer)

    await harness.telegram.wait_for(answered)
    return answer[0]


async def failed_mms(harness: Harness[FakeTwilio], twilio: FakeTwilio, thread: int) -> None:
    """A photo whose send Twilio refuses for good (21211): the SMS fails with its files."""
    refused = {"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400}
    twilio.fail_next("create", status=400, body=refused)
    reply = harness.telegram.user_message(
        GROUP, AGENT, thread_id=thread, photo=PHOTO, caption="Here"
    )
    await harness.telegram.wait_for(
        lambda: harness.telegram.reaction(GROUP, reply["message_id"]) == ["💔"]
    )


async def test_retry_of_a_failed_mms_sends_its_files_again_once(
    start: Start, twilio: FakeTwilio
) -> None:
    harness = await start()
    thread = await topic_of(harness)
    await failed_mms(harness, twilio, thread)
    assert twilio.sent == []
    assert (await retry(harness, thread)).startswith("🔁 Sending again")
    await twilio.wait_for(lambda: len(twilio.sent) == 1)
    [sent] = twilio.sent
    assert sent.body == "Here"
    assert [(m.content_type, m.data) for m in sent.media] == [("image/jpeg", PHOTO)]
    assert "retried already" in await retry(harness, thread)
    await harness.settled()
    assert len(twilio.sent) == 1


async def test_retry_of_a_failed_mms_whose_files_expired_sends_nothing(
    start: Start, twilio: FakeTwilio
) -> None:
    harness = await start()
    thread = await topic_of(harness)
    await failed_mms(harness, twilio, thread)
    store = harness.bridge.store
    assert store is not None
    async with store.shared.write() as tx:
        await tx.conn.execute(outbox_media.update().values(expires_at=time.time() - 1))
    assert "kept for 24 hours" in await retry(harness, thread)
    await harness.settled()
    assert twilio.sent == []  # not the caption alone


async def test_sms_command_as_a_photo_caption_sends_nothing_and_says_how(
    start: Start, twilio: FakeTwilio, telegram: FakeTelegram
) -> None:
    harness = await start()
    asked = telegram.user_message(GROUP, AGENT, photo=PHOTO, caption=f"/sms {CUSTOMER} see this")
    await telegram.wait_for(
        lambda: any(
            (m.get("reply_to_message") or {}).get("message_id") == asked["message_id"]
            and "/sms takes text only" in (m.get("text") or "")
            for m in telegram.sent_messages(GROUP)
        )
    )
    await harness.settled()
    assert twilio.sent == []  # neither the text without its picture, nor anything else
