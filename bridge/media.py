"""Fetching inbound media that a gateway hands out as a plain public link."""

from __future__ import annotations

import httpx

from bridge.errors import Retryable, Terminal
from bridge.tls import tls_context

MAX_BYTES = 20 * 1024 * 1024  # larger than any MMS; a chat upload limit is near it too
TIMEOUT = 30.0


class MediaFetcher:
    """Downloads ``Attachment.url`` for gateways without credentials of their own to add."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._client: httpx.AsyncClient | None = None

    async def fetch(self, url: str) -> tuple[bytes, str]:
        if not url.startswith(("https://", "http://")):
            raise Terminal(f"not a web address: {url[:40]!r}")
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=TIMEOUT, follow_redirects=True, verify=tls_context()
            )
        try:
            async with self._client.stream("GET", url) as response:
                if response.status_code == 429 or response.status_code >= 500:
                    raise Retryable(f"media server answered HTTP {response.status_code}")
                if response.status_code >= 400:
                    raise Terminal(f"media server answered HTTP {response.status_code}")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise Terminal(f"larger than {self.max_bytes // (1024 * 1024)} MB")
                    chunks.append(chunk)
                return b"".join(chunks), response.headers.get("content-type", "")
        except httpx.HTTPError as exc:
            raise Retryable(f"media unreachable ({type(exc).__name__})") from None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
