"""Twilio's vocabulary: X-Twilio-Signature, webhook forms and message resources -> our models."""

from __future__ import annotations

import base64
import hashlib
import hmac
import mimetypes
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit, urlunsplit

from pydantic import SecretStr

from bridge import phone
from bridge.errors import BadRequest, Forbidden, Unauthenticated, Unprocessable
from bridge.models import (
    Attachment,
    DeliveryUpdate,
    InboundSms,
    Status,
    WebhookDoc,
    WebhookEvents,
    WebhookRequest,
)
from bridge.openapi import TEXT, header_scheme, obj
from bridge.phone import normalize

# twilio.com/docs/messaging/guides/outbound-message-status-in-status-callbacks
STATUS = {
    "accepted": Status.QUEUED,
    "scheduled": Status.QUEUED,
    "queued": Status.QUEUED,
    "sending": Status.QUEUED,
    "sent": Status.SENT,
    "partially_delivered": Status.SENT,  # some segments have no receipt: never claim delivery
    "delivered": Status.DELIVERED,
    "read": Status.DELIVERED,
    "undelivered": Status.FAILED,
    "failed": Status.FAILED,
    "canceled": Status.FAILED,
}
INBOUND_STATUSES = ("receiving", "received")

# The codes people meet most (twilio.com/docs/api/errors); anything else is named by number.
ERRORS = {
    "21211": "Invalid 'To' phone number",
    "21408": "Permission to send an SMS has not been enabled for the region",
    "21602": "Message body is required",
    "21606": "The 'From' number is not a valid, SMS-capable number of this account",
    "21610": "The recipient has unsubscribed (replied STOP)",
    "21612": "The 'To' number is not reachable via SMS",
    "21614": "The 'To' number is not a valid mobile number",
    "21617": "The message body exceeds the 1600 character limit",
    "30001": "Queue overflow",
    "30002": "Account suspended",
    "30003": "Unreachable destination handset",
    "30004": "Message blocked",
    "30005": "Unknown destination handset",
    "30006": "Landline or unreachable carrier",
    "30007": "Message filtered by the carrier",
    "30008": "Unknown error",
    "30009": "Missing segment",
    "30010": "Message price exceeds max price",
    "30032": "Toll-free number has not been verified",
    "30034": "Message from an unregistered US A2P 10DLC number",
}
MAX_MEDIA = 10  # Twilio's documented MMS limit; a larger NumMedia is not Twilio talking

_DEFAULT_PORTS = {"https": 443, "http": 80}


def reason_for(code: Any, message: Any = None, raw_status: str = "") -> str:
    """A human reason for a failure: the code's meaning, else Twilio's own words, else the code."""
    code_text = str(code).strip() if code not in (None, "") else ""
    known = ERRORS.get(code_text)
    words = str(message).strip() if message else ""
    text = known or words or (f"Twilio reported the message {raw_status}" if raw_status else "")
    text = text or "Twilio reported a failure"
    return f"{text} (Twilio error {code_text})" if code_text else text


def update_of(
    gateway: str,
    sid: str,
    raw_status: str,
    code: Any = None,
    message: Any = None,
    event_id: str | None = None,
) -> DeliveryUpdate | None:
    """A ``DeliveryUpdate`` for a status word, or None for one that is not about sending."""
    raw = raw_status.strip().lower()
    if raw in INBOUND_STATUSES or not raw:
        return None
    # Rule of the shared contract: an unknown word from a message Twilio has accepted is
    # "queued" at most; the core keeps the higher status if one is already known.
    status = STATUS.get(raw, Status.QUEUED)
    reason = reason_for(code, message, raw) if status is Status.FAILED else None
    return DeliveryUpdate(gateway, sid, status, raw, reason, event_id=event_id)


def rfc2822(value: Any) -> datetime | None:
    """Twilio's resource dates (``Thu, 30 Jul 2015 20:12:31 +0000``), or None."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# -- signature --------------------------------------------------------------------------------


def compute_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """``base64(HMAC-SHA1(token, url + k1 + v1 + k2 + v2 ...))`` over params sorted by name.

    Repeated names are sorted by value too, as Twilio's own validators do.
    """
    data = url + "".join(k + v for k, v in sorted(set(params)))
    mac = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def url_variants(url: str) -> list[str]:
    """The URL as called, without its port, and with the scheme's default port.

    Twilio signs the URL as configured, and its SDKs accept both forms because whether a
    default port shows depends on how the URL was written into the console.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    variants = [url, urlunsplit(parts._replace(netloc=prefix + host))]
    default = _DEFAULT_PORTS.get(parts.scheme)
    if parts.port is None and default is not None:
        variants.append(urlunsplit(parts._replace(netloc=f"{prefix}{host}:{default}")))
    return list(dict.fromkeys(variants))


def verify(auth_token: SecretStr, request: WebhookRequest) -> list[tuple[str, str]]:
    """Check ``X-Twilio-Signature``; the signed form parameters (none for GET or JSON bodies)."""
    signature = request.headers.get("x-twilio-signature", "").strip()
    if not signature:
        raise Unauthenticated("missing X-Twilio-Signature")
    if not request.url:
        raise Unauthenticated("cannot verify X-Twilio-Signature without the called URL")
    params = _signed_params(request)
    token = auth_token.get_secret_value()
    expected = [compute_signature(token, url, params) for url in url_variants(request.url)]
    # Every variant is compared, so timing says nothing about which one came close.
    matches = [hmac.compare_digest(signature.encode(), e.encode()) for e in expected]
    if not any(matches):
        raise Unauthenticated("bad X-Twilio-Signature (is server.public_url the URL Twilio calls?)")
    return params


def _signed_params(request: WebhookRequest) -> list[tuple[str, str]]:
    if request.method.upper() == "GET":
        return []  # a GET webhook's parameters are in the URL, which is signed as a whole
    query = parse_qs(urlsplit(request.url).query)
    if "bodySHA256" in query:
        # JSON-bodied webhooks sign a hash of the raw body, passed in the (signed) URL.
        digest = hashlib.sha256(request.body).hexdigest()
        if not hmac.compare_digest(digest.encode(), query["bodySHA256"][0].encode()):
            raise Unauthenticated("body does not match its bodySHA256")
        return []
    return form_pairs(request.body)


def form_pairs(body: bytes) -> list[tuple[str, str]]:
    """Decode ``application/x-www-form-urlencoded`` strictly: bad encodings are 400s."""
    try:
        text = body.decode("utf-8")
        return parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"malformed form body: {type(exc).__name__}") from None


# -- webhooks ---------------------------------------------------------------------------------


def parse(
    gateway: str,
    auth_token: SecretStr,
    webhook_token: SecretStr | None,
    request: WebhookRequest,
) -> WebhookEvents:
    """An incoming message or a status callback, both signed by Twilio."""
    # An optional extra guard on top of the signature: missing counts as wrong.
    if webhook_token is not None and not hmac.compare_digest(
        (request.token or "").encode(), webhook_token.get_secret_value().encode()
    ):
        raise Forbidden("unknown webhook token")
    pairs = verify(auth_token, request)
    fields: dict[str, str] = dict(request.query) if request.method.upper() == "GET" else {}
    for key, value in pairs:
        fields.setdefault(key, value)  # the first of repeated names, as a form reader would
    if fields.get("MessageStatus") and fields["MessageStatus"].lower() not in INBOUND_STATUSES:
        return _status_callback(gateway, fields)
    return _inbound(gateway, fields, request.received_at)


def _required(fields: Mapping[str, str], *names: str) -> str:
    for name in names:
        value = fields.get(name, "").strip()
        if value:
            return value
    raise Unprocessable(f"missing field '{names[0]}'")


def _status_callback(gateway: str, fields: Mapping[str, str]) -> WebhookEvents:
    sid = _required(fields, "MessageSid", "SmsSid")
    raw = fields["MessageStatus"].strip().lower()
    # Twilio gives a status callback no id of its own; the same status of the same message
    # is the same event, so a retried callback is dropped by the core.
    event_id = f"{sid}:{raw}"
    update = update_of(
        gateway, sid, raw, fields.get("ErrorCode"), fields.get("ErrorMessage"), event_id
    )
    if update is None:
        return WebhookEvents(event_id=event_id, ignored=f"status {raw!r} is not about sending")
    return WebhookEvents(updates=(update,), event_id=event_id)


def _inbound(gateway: str, fields: Mapping[str, str], received_at: float) -> WebhookEvents:
    sid = _required(fields, "MessageSid", "SmsMessageSid", "SmsSid")
    sender = phone.sender(fields.get("From"), "From")
    count_text = fields.get("NumMedia", "0").strip() or "0"
    if not count_text.isdecimal() or int(count_text) > MAX_MEDIA:
        raise Unprocessable(f"field 'NumMedia' must be a number from 0 to {MAX_MEDIA}")
    attachments = []
    for index in range(int(count_text)):
        url = _required(fields, f"MediaUrl{index}")
        if urlsplit(url).scheme not in ("http", "https"):
            raise Unprocessable(f"field 'MediaUrl{index}' is not an http(s) URL")
        content_type = fields.get(f"MediaContentType{index}", "").strip()
        attachments.append(media_attachment(sid, index, url, content_type))
    to = fields.get("To", "").strip()
    sms = InboundSms(
        gateway=gateway,
        provider_id=sid,
        sender=sender,
        text=fields.get("Body", ""),
        # Twilio's request carries no time of its own: it is sent as the SMS arrives.
        received_at=datetime.fromtimestamp(received_at, UTC),
        # The number that received it answers it: accounts often have several.
        device=normalize(to) if to else None,
        attachments=tuple(attachments),
    )
    return WebhookEvents(inbound=(sms,))


def media_attachment(sid: str, index: int, url: str, content_type: str) -> Attachment:
    kind = content_type or "application/octet-stream"
    extension = mimetypes.guess_extension(kind.split(";")[0].strip()) or ""
    return Attachment(content_type=kind, name=f"{sid}-{index}{extension}", url=url)


# What Twilio sends, for GET /openapi.json: an incoming message and the status callbacks, as a
# form (POST) or as query parameters (GET, when the number is set up that way).
_FIELDS = {
    name: TEXT
    for name in (
        "MessageSid", "SmsSid", "SmsMessageSid", "AccountSid", "MessagingServiceSid", "From",
        "To", "Body", "NumMedia", "NumSegments", "MediaUrl0", "MediaContentType0",
        "MessageStatus", "SmsStatus", "ErrorCode", "ErrorMessage",
    )
}  # fmt: skip
FORM = obj({}, _FIELDS)
SECURITY = {
    "twilioSignature": header_scheme(
        "X-Twilio-Signature",
        "base64(HMAC-SHA1(auth_token, the URL Twilio called + each form field's name and value, "
        "sorted by name))",
    )
}


def docs(token: SecretStr | None, answer: bytes) -> tuple[WebhookDoc, ...]:
    """Signed always; under the URL token too when one is set."""
    twiml = {"text/xml": {"type": "string", "examples": [answer.decode()]}}
    summary = "Twilio messaging webhooks (incoming messages, status callbacks)"
    query = tuple(
        {"name": name, "in": "query", "required": False, "schema": schema}
        for name, schema in _FIELDS.items()
    )
    post = WebhookDoc(
        summary,
        token=token is not None,
        security=SECURITY,
        bodies={"application/x-www-form-urlencoded": FORM},
        answer=twiml,
    )
    get = WebhookDoc(
        summary,
        token=token is not None,
        methods=("GET",),
        security=SECURITY,
        parameters=query,
        answer=twiml,
    )
    return post, get
