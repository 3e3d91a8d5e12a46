"""The iP1 fake's data and how iP1 writes it: messages, batches, callbacks, errors, validation."""

from __future__ import annotations

import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

OWNER = "ip1-12345"
NUMBER = "46101606060"  # the account's number that customers write to
GSM = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà\f^{}\\[~]|€"
)
Answer = tuple[Any, int]


def iso_z(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def object_id() -> str:
    """24 hex digits, like the documented ids (``5c613848879973045cf39ac4``)."""
    return secrets.token_hex(12)


@dataclass
class Message:
    """One message resource: an SMS we sent (``mt``) or one that came in (``mo``)."""

    id: str
    batch_id: str
    sender: str
    recipient: str
    body: str
    direction: Literal["mt", "mo"]
    datacoding: str = "gsm"
    reference: str | None = None
    statuses: list[tuple[int, float]] = field(default_factory=list)  # (code, unix time)

    @property
    def code(self) -> int:
        return self.statuses[-1][0]

    def resource(self, *, numeric: bool) -> dict[str, Any]:
        """The seed's representation (numeric enums) or the webhook's (strings)."""
        stamp = self.statuses[-1][1] if self.statuses else time.time()
        mo = self.direction == "mo"
        data: dict[str, Any] = {
            "id": self.id,
            "batchId": self.batch_id,
            "owner": OWNER,
            "sender": self.sender,
            "recipient": self.recipient,
            "body": self.body,
            # ASSUMPTION: 1 = MO, 0 = MT (the seed gives only the enum [0, 1]).
            "direction": int(mo) if numeric else self.direction,
            "segments": 1,
            "type": 0 if numeric else "SMS",
            "datacoding": (2 if self.datacoding == "ucs" else 0) if numeric else "GSM",
            "priority": 1,
            "statuses": [
                {"code": code, "duration": int(code >= 200), "created": iso_z(at)}
                for code, at in self.statuses
            ],
            "modified": iso_z(stamp),
            "mcc": "240",
            "mnc": "01",
        }
        if not mo:
            data |= {"price": 0.041, "currency": "EUR", "reference": self.reference}
        return data


@dataclass
class Batch:
    """A ``POST /v2/batches`` as recorded: the request and the message per recipient."""

    id: str
    request: dict[str, Any]
    messages: list[Message]

    @property
    def report_url(self) -> str | None:
        return self.request.get("deliveryReportUrl")

    def resource(self) -> dict[str, Any]:
        counts = Counter(str(m.code) for m in self.messages)
        summary = {code: {"messages": n, "sms": n} for code, n in counts.items()}
        r = self.request
        return {
            "id": self.id,
            "sender": r["sender"],
            "body": r["body"],
            "owner": OWNER,
            "direction": "MT",
            "type": r.get("type", "sms"),
            "datacoding": str(r.get("datacoding", "ucs")).upper(),
            "priority": r.get("priority", 1),
            "templated": False,
            "priceSummary": {"total": 0.041 * len(self.messages), "currency": "EUR"},
            "messageSummary": summary,
            "status": max(m.code for m in self.messages),
            "deliveryReportUrl": self.report_url,
            "reference": r.get("reference"),
            "tags": r.get("tags") or [],
        }


@dataclass
class Callback:
    """A POST the fake made to a bridge; ``status`` None when the connection failed."""

    url: str
    payload: dict[str, Any]
    status: int | None
    attempts: int = 1


def problem(status: int, title: str, errors: dict[str, list[str]] | None = None) -> Answer:
    """ASP.NET ProblemDetails, the most likely iP1 error body (ASSUMPTION)."""
    body = {"type": f"https://httpstatuses.io/{status}", "title": title, "status": status}
    return (body | {"errors": errors} if errors else body), status


def validate(body: dict[str, Any]) -> dict[str, list[str]]:
    """The documented constraints of a batch, as ASP.NET model-validation messages."""
    errors: dict[str, list[str]] = {}
    sender = body.get("sender")
    if not isinstance(sender, str) or not (
        (sender.isdigit() and len(sender) <= 15)
        or (3 <= len(sender) <= 11 and sender.isascii() and sender.isalnum())
    ):
        errors["Sender"] = ["The sender must be up to 15 digits or 3-11 alphanumeric characters."]
    recipients = body.get("recipients")
    if not isinstance(recipients, list) or not recipients:
        errors["Recipients"] = ["The Recipients field is required."]
    elif not all(isinstance(r, str) and r.isdigit() and len(r) <= 15 for r in recipients):
        errors["Recipients"] = ["Recipients must be MSISDNs: up to 15 digits, without '+'."]
    text = body.get("body")
    if not isinstance(text, str) or not text.strip():
        errors["Body"] = ["The Body field is required."]
    elif len(text) > 2000:
        errors["Body"] = ["The Body may be at most 2000 characters."]
    elif body.get("datacoding") == "gsm" and not all(c in GSM for c in text):
        errors["Body"] = ["The Body contains characters that need datacoding 'ucs'."]
    if body.get("type", "sms") not in ("sms", "flash"):
        errors["Type"] = ["The Type must be 'sms' or 'flash'."]
    if body.get("datacoding", "ucs") not in ("gsm", "ucs"):
        errors["Datacoding"] = ["The Datacoding must be 'gsm' or 'ucs'."]
    if body.get("priority", 1) not in (1, 2):
        errors["Priority"] = ["The Priority must be 1 or 2."]
    return errors
