"""One Bot API call through python-telegram-bot, its errors translated into the bridge's.

Reached only through ``client``, which opts into PTB_TIMEDELTA before PTB is first imported.
"""

from __future__ import annotations

import warnings
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from telegram import error as tg
from telegram.warnings import PTBDeprecationWarning

from bridge.errors import RateLimited, Retryable, Terminal, ThreadClosed, ThreadGone, Unavailable

T = TypeVar("T")

CHAT_DOWN_RETRY = 60.0  # bot removed, chat gone, token revoked: check back slowly, keep the queue
_THREAD_GONE = ("message thread not found", "topic_deleted", "topic_id_invalid")
_CHAT_DOWN = (
    "chat not found",
    "not enough rights",
    "the chat is not a forum",
    "chat_write_forbidden",
    "have no rights",
    "need administrator rights",
)


def _retry_after(exc: tg.RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)  # if PTB_TIMEDELTA was set off
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


async def call(label: str, make: Callable[[], Awaitable[T]]) -> T:
    """Run one Bot API call, translating PTB's errors into the bridge's."""
    try:
        return await make()
    except tg.RetryAfter as exc:
        raise RateLimited(f"Telegram flood control on {label}", _retry_after(exc)) from None
    except tg.BadRequest as exc:
        text = exc.message.lower()
        if any(marker in text for marker in _THREAD_GONE):
            raise ThreadGone(exc.message) from None
        if "topic_closed" in text:
            raise ThreadClosed(exc.message) from None
        if any(marker in text for marker in _CHAT_DOWN):
            raise Unavailable(f"Telegram refused {label}: {exc.message}", CHAT_DOWN_RETRY) from None
        raise Terminal(f"Telegram refused {label}: {exc.message}") from None
    except tg.InvalidToken:
        # PTB's message quotes the token itself ("The token `123:ABC` was rejected…").
        raise Unavailable(
            f"Telegram refused {label}: the bot token was rejected", CHAT_DOWN_RETRY
        ) from None
    except (tg.Forbidden, tg.ChatMigrated, tg.Conflict) as exc:
        raise Unavailable(f"Telegram refused {label}: {exc.message}", CHAT_DOWN_RETRY) from None
    except tg.TimedOut:
        raise Retryable(f"Telegram timed out on {label}") from None
    except tg.NetworkError as exc:
        raise Retryable(f"Telegram unreachable on {label}: {exc.message}") from None
