"""Twilio's REST API over httpx: Basic auth, its error body -> ``bridge.errors``, paging, media."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx

from bridge.errors import Ambiguous, OptedOut, RateLimited, Retryable, Terminal
from bridge.tls import tls_context
from connectors.http import retry_after
from connectors.sms.twilio.webhooks import ERRORS

LABEL = "Twilio"
API = "/2010-04-01"
PAGE_SIZE = 1000  # Twilio's maximum: fewer round trips on a busy day
OPTED_OUT = "21610"  # "Attempt to send to unsubscribed recipient"
MAX_MEDIA_BYTES = 20 * 1024 * 1024  # Twilio caps MMS at 5 MB; this only stops runaway bodies


def twilio_error(response: httpx.Response) -> tuple[str, str]:
    """``(code, message)`` from Twilio's error body ``{"code", "message", "more_info", "status"}``.

    ``more_info`` is left out: messages carry the remote's words, never URLs.
    """
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        # An HTML error page from a proxy says nothing a person in the chat could use.
        return "", (text[:200] if text and "<" not in text else response.reason_phrase)
    if not isinstance(body, dict):
        return "", response.reason_phrase
    code = str(body.get("code") or "")
    message = str(body.get("message") or body.get("detail") or response.reason_phrase)
    return code, message[:200]


def raise_for(response: httpx.Response, *, sending: bool) -> None:
    """Raise the ``bridge.errors`` class a failed Twilio answer calls for."""
    status = response.status_code
    code, message = twilio_error(response)
    where = f"HTTP {status}, error {code}" if code else f"HTTP {status}"
    if status == 429:
        # Error 20429 (too many concurrent requests) was never processed: safe to retry.
        raise RateLimited(f"{LABEL} rate limit ({where}): {message}", retry_after(response, 5.0))
    if status >= 500:
        reason = f"{LABEL} error ({where}): {message}"
        # 503 is what overloaded servers and proxies answer before doing anything.
        raise (Ambiguous if sending and status != 503 else Retryable)(reason)
    raw = code or str(status)
    if status in (401, 403):
        raise Terminal(f"{LABEL} refused our credentials ({where}): {message}", raw_status=raw)
    meaning = ERRORS.get(code)
    if meaning and meaning.lower() not in message.lower():
        message = f"{message} ({meaning})"
    # 21610: the recipient texted STOP to the sending number; Twilio refuses it until START.
    error = OptedOut if code == OPTED_OUT else Terminal
    raise error(f"{LABEL} rejected the request ({where}): {message}", raw_status=raw)


class TwilioApi:
    """One account's slice of the API: every path is under ``/2010-04-01/Accounts/<sid>``."""

    def __init__(self, base_url: str, account_sid: str, auth_token: str, timeout: float) -> None:
        self.base = base_url.rstrip("/")
        self.account = f"{API}/Accounts/{account_sid}"
        self._auth = (account_sid, auth_token)
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None

    async def open(self) -> None:
        self._client = httpx.AsyncClient(
            base_url=self.base,
            auth=self._auth,
            timeout=self._timeout,
            headers={"User-Agent": "smsbridge", "Accept": "application/json"},
            verify=tls_context(),
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("gateway not started")
        return self._client

    async def call(
        self, method: str, path: str, *, sending: bool = False, **kwargs: Any
    ) -> dict[str, Any]:
        """Call ``self.account + path`` and decode its JSON object.

        ``sending`` marks a create: a failure after the request may have reached Twilio is
        ``Ambiguous``, so the core reconciles before sending again.
        """
        try:
            response = await self.client.request(method, self.account + path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise Retryable(f"{LABEL} unreachable ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            error = Ambiguous if sending else Retryable
            raise error(f"{LABEL} request failed ({type(exc).__name__})") from None
        if response.status_code >= 400:
            raise_for(response, sending=sending)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            error = Ambiguous if sending else Retryable
            raise error(f"{LABEL} sent a malformed response (HTTP {response.status_code})")
        return body

    async def messages(self, params: dict[str, str], pages: int) -> AsyncIterator[dict[str, Any]]:
        """Rows of ``GET Messages.json`` (newest first), following ``next_page_uri``."""
        path: str | None = "/Messages.json"
        query: dict[str, str] | None = {"PageSize": str(PAGE_SIZE), **params}
        for _ in range(pages):
            if path is None:
                return
            body = await self.call("GET", path, params=query)
            rows = body.get("messages")
            if not isinstance(rows, list):
                raise Retryable(f"{LABEL} sent a message list without 'messages'")
            for row in rows:
                if isinstance(row, dict):
                    yield row
            following = body.get("next_page_uri")
            # The next page's URI carries the whole query; only our account's is followed.
            path = None
            if isinstance(following, str) and following.startswith(self.account + "/"):
                path = following.removeprefix(self.account)
            query = None

    def media_url(self, uri: str) -> str | None:
        """The download URL of a media resource ``uri`` (``….json``) of this account."""
        if not uri.startswith(self.account + "/"):
            return None
        return self.base + uri.removesuffix(".json")

    async def fetch(self, url: str) -> tuple[bytes, str]:
        """Download media; Twilio redirects to its storage, which gets no credentials."""
        parts, base = urlsplit(url), urlsplit(self.base)
        if (parts.scheme, parts.netloc) != (base.scheme, base.netloc):
            # Our credentials go to Twilio's API host and nowhere else.
            raise Terminal(f"{LABEL} media URL is not on the API host")
        try:
            # httpx drops the Authorization header when a redirect leaves the origin.
            async with self.client.stream("GET", url, follow_redirects=True) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise_for(response, sending=False)
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_MEDIA_BYTES:
                        raise Terminal(f"{LABEL} media is larger than {MAX_MEDIA_BYTES} bytes")
                    chunks.append(chunk)
                kind = response.headers.get("content-type", "application/octet-stream")
        except httpx.HTTPError as exc:
            raise Retryable(f"{LABEL} media download failed ({type(exc).__name__})") from None
        return b"".join(chunks), kind.split(";")[0].strip()
