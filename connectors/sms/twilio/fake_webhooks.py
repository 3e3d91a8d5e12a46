"""Twilio -> the bridge for the fake: signed incoming-message webhooks and status callbacks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import httpx

from bridge.testing.fake_base import LoopbackFake, RecordT
from connectors.sms.twilio.fake_resources import API_VERSION, FakeMessage


def signature(auth_token: str, url: str, params: Iterable[tuple[str, str]] = ()) -> str:
    """X-Twilio-Signature: base64 HMAC-SHA1 of the URL and the POST params sorted by name."""
    data = url + "".join(k + v for k, v in sorted(params))
    mac = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def inbound_params(account: str, base: str, message: FakeMessage) -> dict[str, str]:
    """The incoming-message webhook's form, field for field as Twilio documents it."""
    params = {
        "ToCountry": "US",
        "ToState": "CA",
        "SmsMessageSid": message.sid,
        "NumMedia": str(len(message.media)),
        "ToCity": "SAN FRANCISCO",
        "FromZip": "",
        "SmsSid": message.sid,
        "FromState": "",
        "SmsStatus": "received",
        "FromCity": "",
        "Body": message.body,
        "FromCountry": "US",
        "To": message.to,
        "ToZip": "94105",
        "NumSegments": "1",
        "MessageSid": message.sid,
        "AccountSid": account,
        "From": message.from_,
        "ApiVersion": API_VERSION,
    }
    if message.messaging_service_sid:
        params["MessagingServiceSid"] = message.messaging_service_sid
    for index, media in enumerate(message.media):
        params[f"MediaContentType{index}"] = media.content_type
        params[f"MediaUrl{index}"] = (
            f"{base}/{API_VERSION}/Accounts/{account}/Messages/{message.sid}/Media/{media.sid}"
        )
    return params


def status_params(account: str, message: FakeMessage) -> dict[str, str]:
    """A StatusCallback's form; ``ErrorCode`` only on failed/undelivered, as documented."""
    params = {
        "AccountSid": account,
        "ApiVersion": API_VERSION,
        "From": message.from_,
        "MessageSid": message.sid,
        "MessageStatus": message.status,
        "SmsSid": message.sid,
        "SmsStatus": message.status,
        "To": message.to,
    }
    if message.messaging_service_sid:
        params["MessagingServiceSid"] = message.messaging_service_sid
    if message.status in ("failed", "undelivered") and message.error_code is not None:
        params["ErrorCode"] = str(message.error_code)
    if message.status == "delivered":
        params["RawDlrDoneDate"] = datetime.now(UTC).strftime("%y%m%d%H%M")
    return params


class CallbackMixin(LoopbackFake[RecordT]):
    """The Twilio -> bridge half of :class:`FakeTwilio` (the base's shared client)."""

    account_sid: str
    auth_token: str

    def message(self, sid: str) -> FakeMessage:
        raise NotImplementedError

    async def post_signed(
        self,
        url: str,
        params: dict[str, str],
        *,
        method: str = "POST",
        auth_token: str | None = None,
        signature_header: str | None = None,
    ) -> httpx.Response:
        """Call ``url`` as Twilio does; ``auth_token``/``signature_header`` forge bad requests."""
        token = self.auth_token if auth_token is None else auth_token
        headers = {
            "User-Agent": "TwilioProxy/1.1",
            "I-Twilio-Idempotency-Token": secrets.token_hex(16),
        }
        content = None
        if method == "GET":
            # A GET webhook carries its fields in the query, and the URL with them is signed.
            url = f"{url}{'&' if '?' in url else '?'}{httpx.QueryParams(params)}"
            headers["X-Twilio-Signature"] = signature(token, url)
        else:
            headers["X-Twilio-Signature"] = signature(token, url, params.items())
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            content = str(httpx.QueryParams(params)).encode()
        if signature_header is not None:
            headers["X-Twilio-Signature"] = signature_header
        return await self._client().request(method, url, content=content, headers=headers)

    async def deliver_inbound(self, url: str, message: FakeMessage, **kw: Any) -> httpx.Response:
        params = inbound_params(self.account_sid, self.base_url, message)
        return await self.post_signed(url, params, **kw)

    async def deliver_status(
        self, sid: str, *, url: str | None = None, **kw: Any
    ) -> httpx.Response:
        """The callback for the message's current status (again, to test redelivery)."""
        message = self.message(sid)
        target = url or message.status_callback
        if target is None:
            raise ValueError(f"{sid} has no StatusCallback")
        return await self.post_signed(target, status_params(self.account_sid, message), **kw)
