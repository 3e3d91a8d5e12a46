"""Logging set-up: secrets from the config are masked in every record, whoever logs it."""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Iterable
from types import TracebackType

from bridge.logfmt import JsonFormatter, JsonHandler, LogFormat, LogNumbers, TextFormatter

MASK = "***"
# Libraries that log request URLs (bot tokens sit in Telegram's, API keys in some gateways')
# at INFO; kept at WARNING so the common case never even formats them.
_CHATTY = ("httpx", "httpcore", "telegram", "apscheduler", "uvicorn.access", "aiosqlite")
_TOKEN_IN_URL = re.compile(r"(/bot)\d+:[A-Za-z0-9_-]{20,}")


class Redactor(logging.Filter):
    """Replaces known secret values (and anything shaped like a bot token in a URL)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret containing another is masked whole.
        found = {s for s in secrets if s and len(s) >= 4} | set(self._secrets)
        self._secrets = sorted(found, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return _TOKEN_IN_URL.sub(r"\1" + MASK, text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        redacted = self.redact(message)
        if redacted != message or record.args:
            record.msg, record.args = redacted, None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


REDACTOR = Redactor()
_installed = False


def protect(secrets: Iterable[str]) -> None:
    """Mask ``secrets`` in every log record from now on.

    The masking happens where records are made (the record factory), not in one handler, so
    no handler (a file, a test's capture, a library's own) ever sees a secret.
    """
    global _installed
    REDACTOR.add(secrets)
    if _installed:
        return
    make = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make(*args, **kwargs)
        REDACTOR.filter(record)
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


def setup(
    level: str = "INFO",
    secrets: Iterable[str] = (),
    *,
    fmt: LogFormat = "text",
    numbers: LogNumbers = "masked",
) -> Redactor:
    """Configure the root logger: one line per record on stderr, secrets masked, customers'
    numbers masked unless ``numbers`` is "full". Called again, it replaces its own handler."""
    protect(secrets)
    root = logging.getLogger()
    root.setLevel(level)
    for old in [h for h in root.handlers if getattr(h, "_smsbridge", False)]:
        root.removeHandler(old)
    handler: logging.Handler
    if fmt == "json":
        handler = JsonHandler(sys.stderr)
        handler.setFormatter(JsonFormatter(numbers, REDACTOR.redact))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(TextFormatter(numbers))
    setattr(handler, "_smsbridge", True)  # noqa: B010 - a mark on a stdlib object
    root.addHandler(handler)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    if fmt == "json":
        # Python's warnings and uncaught exceptions would otherwise be bare lines on stderr
        # that a log stack parsing JSON cannot read.
        logging.captureWarnings(True)
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_thread_uncaught
    return REDACTOR


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    logging.getLogger("bridge").critical("uncaught exception", exc_info=(kind, exc, tb))


def _log_thread_uncaught(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("bridge").critical(
        "uncaught exception in thread %s",
        name,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )
