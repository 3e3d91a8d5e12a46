"""What a gateway reported, made to fit the store's columns, whatever the gateway sent.

PostgreSQL refuses NUL characters in text and strings longer than a ``VARCHAR(n)``, and no
database takes a lone UTF-16 surrogate (JSON can carry one: ``"\\ud800"``). Any of them would
fail the transaction, and the gateway would redeliver (or a poll retry) forever. NUL carries
no meaning in an SMS, so it is dropped, and a lone surrogate becomes U+FFFD; an id too long
for its column is replaced by a digest of itself (stable, so de-duplication still holds);
names are shortened.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from bridge.models import Attachment, DeliveryUpdate, InboundSms

ID_LENGTH = 255  # inbound.provider_id, outbox.provider_id, seen_events.key
ALIAS_LENGTH = 255  # conversations.alias
DEVICE_LENGTH = 128  # conversations.device


def text(value: str) -> str:
    if "\x00" in value:
        value = value.replace("\x00", "")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def key(value: str) -> str:
    """An id that fits its column: itself when it does, else a digest of it."""
    value = text(value)
    if len(value) <= ID_LENGTH:
        return value
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def _short(value: str | None, length: int) -> str | None:
    return None if value is None else text(value)[:length] or None


def _attachment(file: Attachment) -> Attachment:
    name = _short(file.name, 255)
    return replace(file, content_type=text(file.content_type)[:255], name=name)


def inbound(sms: InboundSms) -> InboundSms:
    return replace(
        sms,
        provider_id=key(sms.provider_id),
        sender=text(sms.sender),
        text=text(sms.text),
        alias=_short(sms.alias, ALIAS_LENGTH),
        device=_short(sms.device, DEVICE_LENGTH),
        attachments=tuple(_attachment(file) for file in sms.attachments),
    )


def update(found: DeliveryUpdate) -> DeliveryUpdate:
    return replace(
        found,
        provider_id=key(found.provider_id),
        raw_status=text(found.raw_status),
        reason=None if found.reason is None else text(found.reason),
        event_id=None if found.event_id is None else key(found.event_id),
    )
