"""How the fake Twilio fetches an outbound MMS's ``MediaUrl``: as Twilio does, without
credentials, a HEAD and a GET each, the Content-Type checked against what Twilio accepts."""

from __future__ import annotations

import httpx

from connectors.sms.twilio.fake_resources import FakeMedia, new_sid
from connectors.sms.twilio.mms import ACCEPTED, MAX_BYTES

# Twilio's error codes for media it cannot use (twilio.com/docs/api/errors).
RETRIEVAL_FAILURE = 11200  # "HTTP retrieval failure"
INVALID_TYPE = 12300  # "Invalid Content-Type"


async def fetch_media(
    client: httpx.AsyncClient, urls: list[str]
) -> tuple[list[FakeMedia], tuple[int, str] | None]:
    """The files behind ``urls``, or the error Twilio answers the create with."""
    fetched: list[FakeMedia] = []
    for url in urls:
        try:
            head = await client.head(url)
            got = await client.get(url)
        except httpx.HTTPError as exc:
            return fetched, (RETRIEVAL_FAILURE, f"HTTP retrieval failure: {type(exc).__name__}")
        if head.status_code != 200 or got.status_code != 200:
            status = got.status_code if head.status_code == 200 else head.status_code
            return fetched, (RETRIEVAL_FAILURE, f"HTTP retrieval failure: HTTP {status} for {url}")
        kind = got.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in ACCEPTED or head.headers.get("content-type") != got.headers.get(
            "content-type"
        ):
            return fetched, (INVALID_TYPE, f"Invalid Content-Type: {kind or 'none'} at {url}")
        fetched.append(FakeMedia(new_sid("ME"), kind, got.content))
    if sum(len(m.data) for m in fetched) > MAX_BYTES:
        return fetched, (RETRIEVAL_FAILURE, "Media exceeds the 5 MB limit for MMS")
    return fetched, None
