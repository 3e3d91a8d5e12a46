"""The Smstools fake's data and rules: inbox and sent rows, error codes, send validation."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

INBOX_NUMBER = "32460260667"  # the account's virtual number (the webhook sample's receiver)
MAX_LENGTH = 459
_DOUBLE = set("€[]{}\\^~|")  # count twice towards the length, as the docs say
Answer = tuple[Any, int]
# Texts for the documented codes; only "Invalid credentials" is quoted by the docs verbatim.
ERRORS = {
    "102": "No message",
    "103": "Number missing",
    "104": "Invalid credentials",
    "106": "Invalid number",
    "108": "Not enough credits",
    "109": "Sender missing",
    "110": "Sender number must start with +",
    "111": "Sender name max 11 characters without special characters",
    "118": "Message too long",
    "121": "Date invalid or in the past",
    "131": "Recipient is on the opt-out list",
    "132": "Inbox not found",
    "135": "Limit must be between 1 and 2000",
    "136": "Page must be bigger than 0",
}


@dataclass
class File:
    name: str
    mime: str
    data: bytes
    token: str = field(default_factory=lambda: secrets.token_hex(8))


@dataclass
class InboxMessage:
    """An SMS that reached one of the account's inboxes."""

    id: str
    sender: str  # digits, as the API shows numbers
    receiver: str
    message: str
    at: float
    type: str = "sms"
    files: list[File] = field(default_factory=list)


@dataclass
class SentMessage:
    """A message accepted by ``POST /v1/message/send``."""

    messageid: str
    to: str
    message: str
    sender: str
    reference: str | None
    at: float
    status: str | None = None  # deliveryStatus; None until the operator says something


def digits(number: str) -> str:
    text = number.strip().removeprefix("+")
    return text[2:] if text.startswith("00") else text


def error(code: str, status: int = 400) -> Answer:
    return {"error": code, "errorMsg": ERRORS[code]}, status


class Refused(Exception):
    """An error answer from deep inside a handler."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer[0])
        self.answer = answer


def messageid() -> str:
    # The docs' sample ids are 31 lower-case letters and digits.
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(31))


def refusal(data: dict[str, Any], numbers: list[str], zone: ZoneInfo) -> str | None:
    """The documented error code a send request earns, in the order the docs list them."""
    message, to, sender = data.get("message"), data.get("to"), data.get("sender")
    if not isinstance(message, str) or not message:
        return "102"
    if not numbers or (isinstance(to, list) and len(numbers) != len(to)):
        return "103"
    if any(not (d := digits(n)).isdigit() or not 8 <= len(d) <= 15 for n in numbers):
        return "106"
    if not isinstance(sender, str) or not sender:
        return "109"
    if sender.isdigit():
        return "110"
    number = sender.startswith("+")
    if len(sender) > (14 if number else 11) or not sender.lstrip("+").isalnum():
        return "111"
    if sum(2 if c in _DOUBLE else 1 for c in message) > MAX_LENGTH:
        return "118"
    if data.get("date") is not None:
        try:
            scheduled = datetime.strptime(str(data["date"]), "%Y-%m-%d %H:%M")
        except ValueError:
            return "121"
        if scheduled.replace(tzinfo=zone) < datetime.now(UTC):
            return "121"
    return None
