"""HTTP calls to gateways with one error vocabulary: what is retryable, what may have happened."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx

from bridge.errors import Ambiguous, RateLimited, Retryable, Terminal
from bridge.tls import tls_context

log = logging.getLogger(__name__)

DEFAULT_RETRY_AFTER = 30.0


def retry_after(response: httpx.Response, default: float = DEFAULT_RETRY_AFTER) -> float:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return default


def _remote_message(response: httpx.Response) -> str:
    """The remote's own words, short; never the request (its URL may carry a key)."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:200] if text else response.reason_phrase
    if isinstance(body, dict):
        for key in ("message", "errorMsg", "error_message", "detail", "title", "error"):
            value = body.get(key)
            if isinstance(value, str | int) and str(value).strip():
                return f"{value}{_field_errors(body.get('errors'))}"[:200]
    return response.reason_phrase


def _field_errors(errors: object) -> str:
    """ASP.NET-style validation details (``{"errors": {"To": ["not a number"]}}``) after the title,
    which alone says only that something was invalid."""
    if not isinstance(errors, dict):
        return ""
    found = [
        f"{field}: {problem}"
        for field, problems in errors.items()
        for problem in (problems if isinstance(problems, list) else [problems])
        if isinstance(problem, str)
    ]
    return f" ({'; '.join(found)})" if found else ""


async def request_json(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    *,
    label: str,
    sending: bool = False,
    **kwargs: Any,
) -> Any:
    """Call and decode JSON, raising ``bridge.errors`` subclasses.

    ``sending`` marks a call that changes the remote (a send): failures after the request may
    have reached it are then ``Ambiguous``, so the core reconciles before sending again.
    """
    try:
        response = await client.request(method, path, **kwargs)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise Retryable(f"{label} unreachable ({type(exc).__name__})") from None
    except httpx.TimeoutException as exc:
        error = Ambiguous if sending else Retryable
        raise error(f"{label} timed out ({type(exc).__name__})") from None
    except httpx.HTTPError as exc:
        error = Ambiguous if sending else Retryable
        raise error(f"{label} connection failed ({type(exc).__name__})") from None
    status = response.status_code
    if status == 429:
        raise RateLimited(f"{label} rate limit (HTTP 429)", retry_after(response))
    if status >= 500:
        reason = f"{label} error (HTTP {status}): {_remote_message(response)}"
        # 503 is what overloaded servers and proxies answer before doing anything.
        raise (Ambiguous if sending and status != 503 else Retryable)(reason)
    if status in (401, 403):
        raise Terminal(
            f"{label} refused our credentials (HTTP {status}): {_remote_message(response)}",
            raw_status=str(status),
        )
    if status >= 400:
        raise Terminal(
            f"{label} rejected the request (HTTP {status}): {_remote_message(response)}",
            raw_status=str(status),
        )
    try:
        return response.json()
    except (ValueError, json.JSONDecodeError):
        error = Ambiguous if sending else Retryable
        raise error(f"{label} sent a malformed response (HTTP {status})") from None


class HttpGateway:
    """The one httpx client a gateway keeps: opened by ``start()``, closed by ``stop()``."""

    _client: httpx.AsyncClient | None = None

    def open_client(
        self, base_url: str, timeout: float, headers: dict[str, str] | None = None
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            headers={"User-Agent": "smsbridge", **(headers or {})},
            verify=tls_context(),
        )

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("gateway not started")
        return self._client
