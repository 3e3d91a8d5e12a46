"""Pictures and files out: a photo or document posted in a number's thread leaves as MMS.

The files are downloaded from the chat and stored with the SMS in one transaction
(``store/media.py``), then served at ``<server.public_url>/media/<token>`` for the gateway to
fetch (Twilio takes media only by URL). Every limit of the gateway is checked here, before
anything is downloaded where the chat says the size, and always before anything is queued:
what cannot go out whole does not go out at all, not even the caption.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from bridge.errors import DeliveryError, Terminal, TooLarge
from bridge.models import ChatMessage, Conversation, OutboundMedia, OutboundSms, Outbox
from bridge.phone import is_dialable
from bridge.ports import ChatPlatform, FetchesFiles, SendsMedia, SmsGateway
from bridge.router import Router
from bridge.store.media import MediaFile
from bridge.store.sql import SqlStore

log = logging.getLogger(__name__)

# A gateway fetches the files some time after it accepted the SMS (Twilio: seconds); a link
# that would expire sooner than this is not handed out.
FETCH_MARGIN = 300.0

NO_MMS = (
    "Only text can be sent through the gateway {gateway!r}: it cannot send pictures or files "
    "(MMS). Nothing was sent, not even the caption."
)
NO_PUBLIC_URL = (
    "📎 The gateway fetches pictures from the bridge by a link, and the bridge has no public "
    "address: set server.public_url in the config. Nothing was sent."
)
NO_DOWNLOAD = (
    "📎 The bridge cannot download files from this chat, so none can go out. Nothing was sent."
)
TOO_MANY = (
    "📎 {gateway!r} sends at most {limit} files with one SMS, and this has {count}. "
    "Nothing was sent."
)
TOO_BIG = (
    "📎 Too large for an MMS through {gateway!r}: {size} with the text, and the limit is "
    "{limit}. Nothing was sent."
)
BAD_TYPE = "📎 {gateway!r} cannot send {name} ({kind}) as MMS. Nothing was sent."
NOT_FETCHED = (
    "📎 The file could not be downloaded from the chat ({reason}). Nothing was sent: post it again."
)
NOT_DIALABLE = "Cannot answer {number}: it is not a phone number."


def megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


def plain_type(content_type: str) -> str:
    """``"image/JPEG; charset=x"`` -> ``"image/jpeg"``: how gateways list what they accept."""
    return content_type.split(";", 1)[0].strip().lower()


class OutgoingMedia:
    """Queues a chat message with files as an MMS, or says why it cannot go."""

    def __init__(
        self,
        router: Router,
        store: SqlStore,
        gateways: dict[str, SmsGateway],
        chats: dict[str, ChatPlatform],
        public_url: str | None,
    ) -> None:
        self.router = router
        self.store = store
        self.gateways = gateways
        self.chats = chats
        self.public_url = public_url

    async def send(self, msg: ChatMessage, conversation: Conversation, text: str) -> str | None:
        """Queue ``msg``'s files with ``text`` (its caption); the refusal to show, or None."""
        name = conversation.gateway
        gateway = self.gateways.get(name)
        if not isinstance(gateway, SendsMedia):
            return NO_MMS.format(gateway=name)
        if self.public_url is None:
            return NO_PUBLIC_URL
        platform = self.chats[msg.chat]
        if not isinstance(platform, FetchesFiles):
            return NO_DOWNLOAD
        if not is_dialable(conversation.number):
            return NOT_DIALABLE.format(number=conversation.number)
        if await self.store.outbound.by_origin(msg.chat, msg.message_id) is not None:
            return None  # a redelivery: queued before, and the files need not come again
        refusal = self._check(msg, gateway, name, text)
        if refusal is not None:
            return refusal
        budget = gateway.max_media_bytes - len(text.encode())
        files: list[MediaFile] = []
        for file in msg.files:
            left = budget - sum(len(f.data) for f in files)
            try:
                data = await platform.fetch_file(file, max(left, 0))
            except TooLarge:
                limit = megabytes(gateway.max_media_bytes)
                return TOO_BIG.format(gateway=name, size=f"over {limit}", limit=limit)
            except DeliveryError as exc:
                return NOT_FETCHED.format(reason=exc.reason)
            files.append(MediaFile(plain_type(file.content_type), data, file.name))
        outbox_id = await self.router.send(
            msg, name, conversation.number, text, echo=False, media=tuple(files)
        )
        if outbox_id is not None:
            log.info(
                "MMS %s queued with %d file(s), %d bytes",
                outbox_id,
                len(files),
                sum(len(f.data) for f in files),
                extra={"gateway": name, "chat": msg.chat, "number": conversation.number},
            )
        return None

    @staticmethod
    def _check(msg: ChatMessage, gateway: SendsMedia, name: str, text: str) -> str | None:
        """The gateway's limits on what the chat told of the files, before any download."""
        if len(msg.files) > gateway.max_media_files:
            return TOO_MANY.format(
                gateway=name, limit=gateway.max_media_files, count=len(msg.files)
            )
        for file in msg.files:
            kind = plain_type(file.content_type)
            if kind not in gateway.media_types:
                return BAD_TYPE.format(gateway=name, name=file.name or "this file", kind=kind)
        declared = sum(file.size or 0 for file in msg.files) + len(text.encode())
        if declared > gateway.max_media_bytes:
            return TOO_BIG.format(
                gateway=name, size=megabytes(declared), limit=megabytes(gateway.max_media_bytes)
            )
        return None


class MediaLinks:
    """For the SMS worker: an outbox row as the gateway sends it, its files as links."""

    def __init__(self, store: SqlStore, public_url: str | None) -> None:
        self.store = store
        self.public_url = public_url

    async def outbound(self, sms: Outbox) -> OutboundSms:
        """``Terminal`` when its files cannot be fetched any more: sending the text alone
        would tell the customer half of what was written."""
        plain = sms.to_outbound()
        stored = await self.store.media.of_outbox(sms.id)
        if not stored:
            return plain
        if self.public_url is None:
            raise Terminal("it has files, and server.public_url is not set: nowhere to fetch them")
        if min(m.expires_at for m in stored) < time.time() + FETCH_MARGIN:
            raise Terminal("its files expired before it could be sent (they are kept 24 h)")
        media = tuple(
            OutboundMedia(f"{self.public_url}/media/{m.token}", m.content_type, m.name)
            for m in stored
        )
        return replace(plain, media=media)
