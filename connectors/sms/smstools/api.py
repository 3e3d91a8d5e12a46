"""The Smstools API over httpx: our keys per request, the vendor's errors as ``bridge.errors``."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from bridge.errors import Ambiguous, OptedOut, RateLimited, Retryable, Terminal
from connectors.http import retry_after
from connectors.sms.smstools.config import SmstoolsConfig
from connectors.sms.smstools.payloads import vendor_error

LABEL = "Smstools"
MAX_MEDIA_BYTES = 20 * 1024 * 1024
_AUTH_CODES = frozenset({"104", "200"})
OPTED_OUT = "131"  # "recipient is on the opt-out list"


def auth(config: SmstoolsConfig) -> dict[str, str]:
    # Per request, never on the client: media on other hosts must not get our keys.
    return {
        "X-Client-Id": config.client_id.get_secret_value(),
        "X-Client-Secret": config.client_secret.get_secret_value(),
    }


async def call(
    client: httpx.AsyncClient,
    config: SmstoolsConfig,
    method: str,
    path: str,
    what: str,
    sending: bool = False,
    **kwargs: Any,
) -> dict[str, Any]:
    """One API call; vendor errors (also inside HTTP 200) become ``bridge.errors``."""
    unsure = Ambiguous if sending else Retryable
    try:
        response = await client.request(method, path, headers=auth(config), **kwargs)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise Retryable(f"{LABEL} unreachable ({type(exc).__name__})") from None
    except httpx.TimeoutException as exc:
        raise unsure(f"{LABEL} timed out ({type(exc).__name__})") from None
    except httpx.HTTPError as exc:
        raise unsure(f"{LABEL} connection failed ({type(exc).__name__})") from None
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    code, words = vendor_error(body)
    if status == 429:
        raise RateLimited(f"{LABEL} rate limit (HTTP 429)", retry_after(response))
    if status >= 500 or code == "105":
        text = words or response.reason_phrase
        # 503 (and a 105 answer) come before the work is done; others may come after.
        error = Ambiguous if sending and status >= 500 and status != 503 else Retryable
        raise error(f"{LABEL} server error (HTTP {status}): {text}")
    if code is not None or status >= 400:
        label = f"error {code}" if code and code.isdigit() else f"HTTP {status}"
        text = words or response.reason_phrase
        raw = code or str(status)
        if code in _AUTH_CODES or status in (401, 403):
            raise Terminal(f"{LABEL} refused our credentials ({label}): {text}", raw_status=raw)
        # 131: the recipient is on the account's opt-out list.
        refused = OptedOut if code == OPTED_OUT else Terminal
        raise refused(f"{LABEL} refused {what} ({label}): {text}", raw_status=raw)
    if not isinstance(body, dict):
        raise unsure(f"{LABEL} sent a malformed response to {what} (HTTP {status})")
    return body


async def download(
    client: httpx.AsyncClient, config: SmstoolsConfig, url: str
) -> tuple[bytes, str]:
    """An image of a conversation; our keys go only to the API's own host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise Terminal(f"{LABEL} attachment has no web address")
    ours = parts.netloc == urlsplit(str(config.base_url)).netloc
    try:
        response = await client.get(url, headers=auth(config) if ours else None)
    except httpx.HTTPError as exc:
        raise Retryable(f"{LABEL} attachment download failed ({type(exc).__name__})") from None
    if response.status_code == 429:
        raise RateLimited(f"{LABEL} rate limit (HTTP 429)", retry_after(response))
    if response.status_code >= 500:
        raise Retryable(f"{LABEL} attachment download failed (HTTP {response.status_code})")
    if response.status_code >= 400:
        raise Terminal(f"{LABEL} attachment is not available (HTTP {response.status_code})")
    if len(response.content) > MAX_MEDIA_BYTES:
        raise Terminal(f"{LABEL} attachment is over {MAX_MEDIA_BYTES // 2**20} MB")
    kind = response.headers.get("content-type", "application/octet-stream")
    return response.content, kind.split(";")[0].strip()
