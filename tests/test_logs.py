"""bridge/logfmt.py and logs.setup: numbers masked in free text, the JSON line's fields, secrets
and numbers out of tracebacks, and the handler's own failures as JSON too."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from bridge import logs
from bridge.config import parse_config
from bridge.errors import ConfigError
from bridge.logfmt import about, mask_numbers

NUMBER = "+15551234567"
SECRET = "s3cret-key-0123456789"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("SMS from +15551234567 ok", "SMS from …4567 ok"),
        ("history of +1 555-123-4567: 3 messages", "history of …4567: 3 messages"),
        ("+1 555-123-4567 2 messages", "…4567 2 messages"),
        ("to +33 6 12 34 56 78.", "to …5678."),
        ("GET /send?to=%2B15551234567&x=1", "GET /send?to=…4567&x=1"),
        ("national 0612345678", "national …5678"),
        ("('+15551234567',)", "('…4567',)"),
        # Not numbers: left alone.
        ("at 2026-12-03T09:00:00.123Z", "at 2026-12-03T09:00:00.123Z"),
        ("outbox 1234567, SMS 42", "outbox 1234567, SMS 42"),
        ("id SM1234567890abc", "id SM1234567890abc"),
        ("127.0.0.1:54321 took 0.123456789 s", "127.0.0.1:54321 took 0.123456789 s"),
    ],
)
def test_numbers_in_free_text_keep_their_last_four_digits(text: str, shown: str) -> None:
    assert mask_numbers(text) == shown


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """logs.setup changes process-wide state: put it back for the next test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    hooks = sys.excepthook, threading.excepthook
    yield
    for handler in list(root.handlers):
        if getattr(handler, "_smsbridge", False):
            root.removeHandler(handler)
    root.handlers[:] = handlers
    root.setLevel(level)
    sys.excepthook, threading.excepthook = hooks
    logging.captureWarnings(False)


def lines(err: str) -> list[dict[str, Any]]:
    parsed = [json.loads(line) for line in err.splitlines()]
    assert all(isinstance(record, dict) for record in parsed)
    return parsed


@pytest.mark.usefixtures("restore_logging")
def test_a_json_line_with_context_and_a_masked_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.setup("INFO", [SECRET], fmt="json")
    log = logging.getLogger("bridge.test")
    try:
        raise RuntimeError(f"gateway said no to {NUMBER} with {SECRET}")
    except RuntimeError:
        log.exception(
            "sending to %s failed",
            NUMBER,
            extra={"gateway": "office", "number": NUMBER, "outbox_id": 7},
        )
    log.debug("below the level: not written")
    [line] = lines(capsys.readouterr().err)
    assert line["level"] == "ERROR" and line["logger"] == "bridge.test"
    assert line["time"].endswith("Z") and "T" in line["time"]
    assert line["message"] == "sending to …4567 failed"
    assert (line["gateway"], line["number"], line["outbox_id"]) == ("office", "…4567", 7)
    assert "chat" not in line  # only the context the record has
    assert line["exc"].startswith("Traceback") and "RuntimeError" in line["exc"]
    assert f"no to …4567 with {logs.MASK}" in line["exc"]
    whole = json.dumps(line)
    assert NUMBER not in whole and NUMBER[1:] not in whole and SECRET not in whole


@pytest.mark.usefixtures("restore_logging")
def test_full_numbers_and_secrets_in_context_fields(capsys: pytest.CaptureFixture[str]) -> None:
    logs.setup("INFO", [SECRET], fmt="json", numbers="full")
    logging.getLogger("x").warning(
        "to %s", NUMBER, extra={"number": NUMBER, "chat": f"chat-{SECRET}"}
    )
    [line] = lines(capsys.readouterr().err)
    assert line["message"] == f"to {NUMBER}" and line["number"] == NUMBER
    assert line["chat"] == f"chat-{logs.MASK}"


@pytest.mark.usefixtures("restore_logging")
async def test_a_task_s_context_names_every_line_it_logs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.setup("INFO", fmt="json")
    log = logging.getLogger("bridge.posting")

    async def job(number: str, outbox_id: int) -> None:
        about(chat="support", number=number, outbox_id=outbox_id)
        await asyncio.sleep(0)
        log.info("posting")

    await asyncio.gather(job(NUMBER, 1), job("+447700900123", 2))
    log.info("outside any job")
    first, second, outside = lines(capsys.readouterr().err)
    assert (first["number"], first["outbox_id"], first["chat"]) == ("…4567", 1, "support")
    assert (second["number"], second["outbox_id"]) == ("…0123", 2)
    assert set(outside) == {"time", "level", "logger", "message"}


@pytest.mark.usefixtures("restore_logging")
def test_text_format_masks_numbers_but_keeps_its_layout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.setup("INFO")
    logging.getLogger("bridge.x").warning("from %s", NUMBER, extra={"number": NUMBER})
    err = capsys.readouterr().err
    assert err.rstrip().endswith("WARNING bridge.x: from …4567"), err
    logs.setup("INFO", numbers="full")  # set up again: replaces its handler, no duplicate
    logging.getLogger("bridge.x").warning("from %s", NUMBER)
    [line] = capsys.readouterr().err.splitlines()
    assert line.endswith(f"bridge.x: from {NUMBER}")


@pytest.mark.usefixtures("restore_logging")
def test_warnings_uncaught_errors_and_broken_records_are_json_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.setup("INFO", fmt="json")
    # What the warnings module calls to show one (pytest's own capture is not in the way).
    warnings.showwarning(UserWarning(f"careful with {NUMBER}"), UserWarning, __file__, 1)
    try:
        raise ValueError(NUMBER)
    except ValueError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    [handler] = [h for h in logging.getLogger().handlers if getattr(h, "_smsbridge", False)]
    broken = logging.LogRecord("lib", logging.INFO, __file__, 1, "x", None, None)
    handler.handleError(broken)
    warned, uncaught, failed = lines(capsys.readouterr().err)
    assert warned["logger"] == "py.warnings" and "…4567" in warned["message"]
    assert uncaught["level"] == "CRITICAL" and "ValueError: …4567" in uncaught["exc"]
    assert failed["level"] == "ERROR" and "from lib could not be written" in failed["message"]


def _config(**top: Any) -> dict[str, Any]:
    return {
        "gateways": [{"name": "g", "type": "smsmobileapi", "api_key": "k" * 12}],
        "chats": [{"name": "c", "type": "telegram", "bot_token": "1:abc", "chat_id": -100}],
        "routes": [{"gateway": "g", "chat": "c"}],
        **top,
    }


def test_log_format_and_numbers_are_checked() -> None:
    config = parse_config(_config(), environ={})
    assert (config.log_format, config.log_numbers) == ("text", "masked")
    config = parse_config(_config(log_format="json", log_numbers="full"), environ={})
    assert (config.log_format, config.log_numbers) == ("json", "full")
    with pytest.raises(ConfigError) as caught:
        parse_config(_config(log_format="xml", log_numbers="some"), environ={})
    assert sorted(p.split(":")[0] for p in caught.value.problems) == ["log_format", "log_numbers"]
