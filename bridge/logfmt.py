"""How log lines look: text or one JSON object per line, customers' numbers masked or not.

Secrets are masked earlier, where records are made (bridge/logs.py), so every handler is safe
from them. Numbers are masked here, in the bridge's own handler only: what an operator ships to
a log stack is what must not hold a customer's number, while tests capturing records still see
the real text.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["text", "json"]
LogNumbers = Literal["masked", "full"]
# The context a log call names with ``extra={...}``, in the order JSON shows them.
CONTEXT = ("gateway", "chat", "number", "outbox_id")
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

# What could be a phone number in free text: "+" (or a URL's "%2B") then 7 to 15 digits with
# the separators people and libphonenumber write ("+1 555-123-4567", "+33 6 12 34 56 78"); or
# a bare run of 8 to 15 digits (a number without its "+", in a URL or a vendor's payload).
# Over-masking (a Telegram chat id, a unix time) costs a little detail; under-masking leaks.
_NUMBER = re.compile(
    r"(?:\+|%2[Bb])\d(?:[ \-.()]{0,2}\d){5,13}\d"  # ends on 2 digits: "+1 555-123-4567 2 SMS"
    r"|(?<![\w.])\d{8,15}(?!\w)"
)
_DIGITS = re.compile(r"\d")
# Context set for a whole task (a chat worker's job), for the lines that do not pass ``extra``.
_ABOUT: ContextVar[Mapping[str, object] | None] = ContextVar("log_context", default=None)


def about(**fields: object) -> None:
    """Name the gateway, chat, number or outbox id of what this task now does, in the JSON
    lines it logs from here on. Only for a task of its own: the context stays until replaced."""
    _ABOUT.set({k: v for k, v in fields.items() if v is not None})


def mask_number(number: str) -> str:
    """ "+15551234567" -> "…4567": enough to tell customers apart, not to call them."""
    digits = _DIGITS.findall(number.replace("%2B", "").replace("%2b", ""))
    return "…" + "".join(digits[-4:])


def mask_numbers(text: str) -> str:
    """Every number-looking run in ``text``, masked."""
    return _NUMBER.sub(lambda match: mask_number(match.group(0)), text)


def _keep(text: str) -> str:
    return text


class TextFormatter(logging.Formatter):
    """The classic line, with numbers masked in the message and the traceback."""

    def __init__(self, numbers: LogNumbers = "masked") -> None:
        super().__init__(TEXT_FORMAT)
        self._mask: Callable[[str], str] = mask_numbers if numbers == "masked" else _keep

    def format(self, record: logging.LogRecord) -> str:
        return self._mask(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message, the context
    fields the record carries, and "exc" for a traceback."""

    def __init__(
        self, numbers: LogNumbers = "masked", redact: Callable[[str], str] = _keep
    ) -> None:
        super().__init__()
        self._masked = numbers == "masked"
        self._redact = redact

    def _clean(self, text: str) -> str:
        text = self._redact(text)
        return mask_numbers(text) if self._masked else text

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line: dict[str, object] = {
            "time": when.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": self._clean(record.getMessage()),
        }
        ambient = _ABOUT.get() or {}
        for key in CONTEXT:
            value = getattr(record, key, ambient.get(key))
            if value is None:
                continue
            if key == "number":
                text = self._redact(str(value))
                line[key] = mask_number(text) if self._masked else text
            elif isinstance(value, int | float) and not isinstance(value, bool):
                line[key] = value
            else:
                line[key] = self._clean(str(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = self._clean(record.exc_text)
        if record.stack_info:
            line["stack"] = self._clean(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False, default=str)


class JsonHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler whose own failures are JSON lines too, never a bare traceback."""

    def handleError(self, record: logging.LogRecord) -> None:
        try:
            problem = {
                "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "level": "ERROR",
                "logger": "bridge.logfmt",
                "message": f"a log record from {record.name} could not be written",
            }
            self.stream.write(json.dumps(problem) + self.terminator)
            self.flush()
        except Exception:  # noqa: S110 - nowhere left to report it
            pass
