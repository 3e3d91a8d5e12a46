"""How Slack's errors map to the bridge's: every Web API call goes through ``call``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError

from bridge.errors import RateLimited, Retryable, Terminal, ThreadGone, Unavailable

T = TypeVar("T")
CHAT_DOWN_RETRY = 60.0  # token revoked, bot not in the channel: check back slowly, keep the queue
# A post into a thread whose first message is gone (what Slack may answer for it).
_THREAD_GONE = frozenset({"thread_not_found", "message_not_found", "cannot_reply_to_message"})
_CHAT_DOWN = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "team_not_found",
        "ekm_access_denied",
    }
)
# A scope or permission the app lacks stops the chat only for what every post needs; reactions,
# private notices and files are extras, and refusing them must not hold up the thread's queue.
_NOT_PERMITTED = frozenset({"missing_scope", "no_permission"})
_ESSENTIAL = frozenset({"chat.postMessage", "chat.update", "auth.test", "apps.connections.open"})
_RATE_LIMITED = frozenset({"ratelimited", "rate_limited", "message_limit_exceeded"})
_SLACK_TROUBLE = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return str(value)
    return None


def _retry_after(headers: Mapping[str, Any]) -> float:
    try:
        return max(1.0, float(_header(headers, "retry-after") or 1))
    except ValueError:
        return 1.0


async def call(
    label: str,
    make: Callable[[], Awaitable[T]],
    *,
    in_thread: bool = False,
    pacing_key: str | None = None,
) -> T:
    """Run one Web API call, translating slack_sdk's errors into the bridge's.

    ``pacing_key`` is what a rate limit on this method holds (Slack limits each method on its
    own); without it the whole chat waits. Messages carry Slack's error code and our context
    only: never a token or a URL.
    """
    try:
        return await make()
    except SlackApiError as exc:
        response = exc.response
        status = response.status_code
        data = response.data if isinstance(response.data, dict) else {}
        error = str(data.get("error") or f"HTTP {status}")
        if status == 429 or error in _RATE_LIMITED:
            raise RateLimited(
                f"Slack rate limit on {label}", _retry_after(response.headers), pacing_key
            ) from None
        if status >= 500 or error in _SLACK_TROUBLE:
            raise Retryable(f"Slack failed on {label}: {error}") from None
        if in_thread and error in _THREAD_GONE:
            raise ThreadGone(f"Slack: the thread is gone ({error})") from None
        if error in _CHAT_DOWN or (error in _NOT_PERMITTED and label in _ESSENTIAL):
            raise Unavailable(f"Slack refused {label}: {error}", CHAT_DOWN_RETRY) from None
        raise Terminal(f"Slack refused {label}: {error}", raw_status=error) from None
    except SlackRequestError:
        raise Retryable(f"Slack refused the request for {label}") from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise Retryable(f"Slack unreachable on {label}: {type(exc).__name__}") from None
