"""Downloading what a person shared (``FetchesFiles``): ``url_private`` with the bot token.

Slack serves files at ``url_private`` to ``Authorization: Bearer <bot token>`` when the app
has the ``files:read`` scope; without it, it redirects to its sign-in page (an HTML page with
200 once followed), so redirects are not followed and HTML where a file was due is refused.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp

from bridge.errors import Retryable, Terminal, TooLarge
from bridge.models import ChatFile

SLACK_FILES = ("https", "files.slack.com")
CHUNK = 64 * 1024
NO_SCOPE = "Slack did not hand out the file: does the app have the files:read scope?"


def _trusted(url: str, api_base: str) -> bool:
    """The bot token goes to Slack's file host, or to the host its API is configured on
    (a proxy, or the fake), and nowhere else: a message's file URL is data from outside."""
    parts, base = urlsplit(url), urlsplit(api_base)
    return (parts.scheme, parts.netloc) in (SLACK_FILES, (base.scheme, base.netloc))


async def download(
    session: aiohttp.ClientSession,
    token: str,
    api_base: str,
    file: ChatFile,
    limit: int,
    seconds: float,
) -> bytes:
    """The file's bytes; ``TooLarge`` past ``limit`` (stops reading there)."""
    if not _trusted(file.ref, api_base):
        raise Terminal("the file's address is not on Slack")
    if file.size is not None and file.size > limit:
        raise TooLarge(f"the file is larger than {limit} bytes")
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with session.get(
            file.ref,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=seconds),
        ) as response:
            if response.status == 429 or response.status >= 500:
                raise Retryable(f"Slack answered HTTP {response.status} for the file")
            if response.status in (301, 302, 303, 307, 308, 401, 403):
                raise Terminal(NO_SCOPE)
            if response.status != 200:
                raise Terminal(f"Slack answered HTTP {response.status} for the file")
            kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if kind == "text/html" and file.content_type != "text/html":
                raise Terminal(NO_SCOPE)
            chunks, size = [], 0
            async for chunk in response.content.iter_chunked(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"the file is larger than {limit} bytes")
                chunks.append(chunk)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise Retryable(f"Slack file download failed ({type(exc).__name__})") from None
    return b"".join(chunks)
