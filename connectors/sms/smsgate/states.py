"""SMSGate message states in our model, and counting the delivered parts of a long SMS."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from bridge.models import Status
from bridge.phone import normalize

# Message states of GET /messages/{id} (ProcessingState) and what they mean to us.
STATES = {
    "Pending": Status.QUEUED,
    "Processed": Status.QUEUED,  # handed to Android's SMS API, not yet sent
    "Cancelling": Status.QUEUED,
    "Sent": Status.SENT,
    "Delivered": Status.DELIVERED,
    "Failed": Status.FAILED,
    "Cancelled": Status.FAILED,
}
MAX_TRACKED = 10_000  # messages whose delivered parts we count; old ones fall out first


def state_reason(body: dict[str, Any]) -> str | None:
    """The failure reason of a message state: the first recipient's ``error``."""
    for recipient in body.get("recipients") or []:
        if isinstance(recipient, dict) and recipient.get("error"):
            return str(recipient["error"])[:200]
    return None


def recipients(state: dict[str, Any], region: str | None) -> set[str]:
    """The numbers a message state (``GET /messages``) went to, as E.164."""
    return {
        normalize(str(r.get("phoneNumber")), region)
        for r in state.get("recipients") or []
        if isinstance(r, dict) and r.get("phoneNumber")
    }


@dataclass
class _Parts:
    total: int | None = None
    delivered: set[str] = field(default_factory=set)  # event ids, so a redelivery counts once


class PartsCounter:
    """``sms:delivered`` fires once per SMS part: a message is delivered when all of them are.

    Held in memory: after a restart a half-counted message stays "sent" until the status poll
    (``GET /messages/{id}``, which aggregates the parts) says delivered.
    """

    def __init__(self, limit: int = MAX_TRACKED) -> None:
        self._limit = limit
        self._messages: OrderedDict[str, _Parts] = OrderedDict()

    def _get(self, message_id: str) -> _Parts:
        parts = self._messages.pop(message_id, None) or _Parts()
        self._messages[message_id] = parts
        while len(self._messages) > self._limit:
            self._messages.popitem(last=False)
        return parts

    def sent(self, message_id: str, total: int | None) -> None:
        if total:
            self._get(message_id).total = total

    def delivered(
        self, message_id: str, event_id: str, total: int | None
    ) -> tuple[int, int | None]:
        """Record one delivered part; (parts delivered so far, parts in all or None)."""
        parts = self._get(message_id)
        if total:
            parts.total = total
        parts.delivered.add(event_id)
        return len(parts.delivered), parts.total
