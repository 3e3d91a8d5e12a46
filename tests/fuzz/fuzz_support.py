"""What the fuzz tests share: one webhook-taking config per gateway type, and how each signs."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from connectors.sms.smsgate.fake_phone import sign as smsgate_sign
from connectors.sms.smsmobileapi.fake_webhooks import sign as smsmobileapi_sign
from connectors.sms.twilio.webhooks import compute_signature

TOKEN = "fuzz-token-0123456789abcdef"
SECRET = "fuzz-secret-0123456789abcdef"
TWILIO_SID = "AC" + "0" * 32

# Per gateway type: the settings that make it take webhooks with every credential it can check.
WEBHOOK_SETTINGS: dict[str, dict[str, Any]] = {
    "smsmobileapi": {"webhook_token": TOKEN, "webhook_secret": SECRET},
    "smsgateway24": {"webhook_token": TOKEN, "devices": [{"device_id": 260}]},
    "ip1": {"webhook_token": TOKEN, "sender": "Bridge"},
    "smstools": {"webhook_token": TOKEN, "sender": "Bridge"},
    "smsgate": {"webhook_token": TOKEN, "signing_key": SECRET},
    "twilio": {"from_number": "+15550001111"},
}

# What lets each connector in when no fake stands behind it (the parsers never call out).
OFFLINE_CREDENTIALS: dict[str, dict[str, Any]] = {
    "smsmobileapi": {"api_key": "key"},
    "smsgateway24": {"token": "api-token"},
    "ip1": {"api_key": "key"},
    "smstools": {"client_id": "id", "client_secret": "secret"},
    "smsgate": {"username": "user", "password": "pass"},
    "twilio": {"account_sid": TWILIO_SID, "auth_token": SECRET},
}


def signed_headers(
    kind: str, url: str, method: str, body: bytes, twilio_token: str = SECRET
) -> dict[str, str]:
    """The headers the vendor would add to this request (none for URL-token gateways)."""
    now = int(time.time())
    path = urlsplit(url).path
    if kind == "smsmobileapi" and not path.endswith(TOKEN):
        return {
            "X-SMSMobileAPI-Timestamp": str(now),
            "X-SMSMobileAPI-Signature": smsmobileapi_sign(SECRET, now, body),
        }
    if kind == "smsgate":
        return {"X-Timestamp": str(now), "X-Signature": smsgate_sign(SECRET, body, now)}
    if kind == "twilio":
        params: list[tuple[str, str]] = []
        if method.upper() == "POST":
            try:
                params = parse_qsl(body.decode(), keep_blank_values=True)
            except UnicodeDecodeError:
                params = []
        return {"X-Twilio-Signature": compute_signature(twilio_token, url, params)}
    return {}


def body_digest_query(body: bytes) -> str:
    """Twilio's JSON webhooks sign the body through ``bodySHA256`` in the (signed) URL."""
    return f"bodySHA256={hashlib.sha256(body).hexdigest()}"


def slack_headers(signing_secret: str, body: bytes) -> dict[str, str]:
    now = str(int(time.time()))
    base = b"v0:" + now.encode() + b":" + body
    mac = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": now, "X-Slack-Signature": f"v0={mac}"}
