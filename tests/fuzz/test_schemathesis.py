"""Schemathesis against a running bridge, from the bridge's own GET /openapi.json.

Every gateway type takes webhooks, Telegram is in webhook mode and Slack on the Events API, so
every parser and every route is reached; the store is PostgreSQL, the stricter one (lengths,
NUL characters). Requests carry valid tokens and signatures (added by a
``requests`` auth hook, which sees the exact bytes that are signed). The checks: never a 5xx,
status codes and content types as documented, and bodies as documented (4xx: ``{"error": …}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import requests
import schemathesis
from fuzz_support import SECRET, TOKEN, WEBHOOK_SETTINGS, signed_headers, slack_headers
from hypothesis import HealthCheck, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bridge.app import Bridge
from bridge.config import parse_config
from bridge.testing.fake_harness import free_port
from connectors import GATEWAYS
from connectors.chat.slack.fake import FakeSlack
from connectors.chat.telegram.fake import FakeLimits, FakeTelegram

GROUP = -1001234567890
CHANNEL = "C0FUZZ"
TELEGRAM_SECRET = "fuzz-telegram-secret"
MAX_BODY = 64 * 1024
# Every gateway in the registry, each on its loopback fake.
FAKES = {kind: spec.fake for kind, spec in GATEWAYS.items()}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
FAST = {"messages": 1000, "seconds": 1}
# Per operation and generation mode (valid, and invalid per the document).
FUZZ = settings(
    max_examples=20, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


class LiveBridge:
    """A bridge and its fakes on their own loop in a thread: schemathesis calls synchronously."""

    def __init__(self, store_url: str) -> None:
        self.store_url = store_url
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.twilio_token = ""
        self.slack_secret = ""
        self._ready = threading.Event()
        self._failed: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="live-bridge", daemon=True)

    def __enter__(self) -> LiveBridge:
        self._thread.start()
        assert self._ready.wait(60), "the bridge did not start"
        if self._failed is not None:
            raise self._failed
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
        assert not self._thread.is_alive(), "the bridge did not stop"
        if self._failed is not None:
            raise self._failed

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # handed to the test thread
            self._failed = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        # The session's scratch database: emptied first, as the pg_url fixture does per test.
        conn = await asyncpg.connect(self.store_url, timeout=10)
        try:
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        finally:
            await conn.close()
        async with contextlib.AsyncExitStack() as stack:
            telegram = await stack.enter_async_context(FakeTelegram(limits=FakeLimits.off()))
            telegram.add_forum(GROUP, "Support")
            slack = await stack.enter_async_context(FakeSlack())
            slack.add_channel(CHANNEL, "support")
            fakes = {kind: await stack.enter_async_context(cls()) for kind, cls in FAKES.items()}
            self.twilio_token = fakes["twilio"].auth_token
            self.slack_secret = slack.signing_secret
            bridge = Bridge(parse_config(self._config(telegram, slack, fakes), environ={}))
            await bridge.start()
            try:
                await telegram.wait_for(lambda: telegram.webhook is not None)
                self._ready.set()
                await self._stop.wait()
            finally:
                await bridge.stop()

    def _config(self, telegram: FakeTelegram, slack: FakeSlack, fakes: dict[str, Any]) -> Any:
        pacing = {"chat": FAST, "group": FAST, "overall": FAST}
        chats = [
            {
                "name": "support",
                "type": "telegram",
                "bot_token": telegram.token,
                "chat_id": GROUP,
                "base_url": telegram.base_url,
                "transport": "webhook",
                "webhook_secret": TELEGRAM_SECRET,
                "pacing": pacing,
            },
            {
                "name": "team",
                "type": "slack",
                "bot_token": slack.bot_token,
                "signing_secret": slack.signing_secret,
                "channel": CHANNEL,
                "base_url": slack.api_url,
                "pacing": {"channel": FAST, "reactions": FAST},
            },
        ]
        settings = {"receive": "webhook", "status_poll_interval": 3600}
        gateways = [
            fake.section(kind, **settings, **WEBHOOK_SETTINGS[kind]) for kind, fake in fakes.items()
        ]
        routes = [{"gateway": kind, "chat": "support"} for kind in fakes]
        return {
            "store": {"url": self.store_url},
            "server": {
                "host": "127.0.0.1",
                "port": self.port,
                "public_url": self.base,
                "max_body_bytes": MAX_BODY,
            },
            "gateways": gateways,
            "chats": chats,
            "routes": [*routes, {"gateway": "twilio", "chat": "team"}],
        }


class Credentials(requests.auth.AuthBase):
    """What the vendor would add to each request: the right URL token, fresh signatures."""

    TOKEN_PATH = re.compile(r"^(/webhooks/sms/[^/]+)/[^/]+$")

    def __init__(self, live: LiveBridge) -> None:
        self.live = live

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        assert request.url is not None and request.method is not None
        parts = urlsplit(request.url)
        path = self.TOKEN_PATH.sub(rf"\1/{TOKEN}", parts.path)
        request.url = urlunsplit(parts._replace(path=path))
        body = request.body or b""
        raw = body.encode() if isinstance(body, str) else body
        assert isinstance(raw, bytes)
        segments = path.split("/")
        headers: dict[str, str] = {}
        if path.startswith("/webhooks/sms/"):
            kind = segments[3]
            token = self.live.twilio_token
            headers = signed_headers(kind, request.url, request.method, raw, token)
        elif path.startswith("/webhooks/telegram/"):
            headers = {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}
        elif path.startswith("/webhooks/slack/"):
            headers = slack_headers(self.live.slack_secret, raw)
        request.headers.update(headers)
        return request


@pytest.fixture(scope="module")
def live(pg_server: str) -> Iterator[LiveBridge]:
    with LiveBridge(pg_server) as running:
        yield running


@pytest.fixture(scope="module")
def session(live: LiveBridge) -> Iterator[requests.Session]:
    with requests.Session() as http:
        http.trust_env = False  # loopback only, whatever the developer's proxy settings
        http.auth = Credentials(live)
        yield http


def test_the_bridge_never_fails_and_answers_as_documented(
    live: LiveBridge, session: requests.Session
) -> None:
    schema = schemathesis.openapi.from_url(f"{live.base}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    statuses: dict[str, Counter[int]] = {op.label: Counter() for op in operations}
    for operation in operations:
        # Something to get wrong on purpose: a body or a parameter (the core's GETs have none).
        negatable = bool(operation.get_request_payload_content_types()) or any(
            True for _ in operation.iter_parameters()
        )
        for mode in GenerationMode if negatable else [GenerationMode.POSITIVE]:

            @FUZZ
            @given(case=operation.as_strategy(generation_mode=mode))
            def call(case: Case) -> None:
                response = case.call_and_validate(
                    base_url=live.base, session=session, checks=CHECKS, timeout=10
                )
                statuses[case.operation.label][response.status_code] += 1

            call()
    print(f"\n{sum(seen.total() for seen in statuses.values())} requests:")
    for label, seen in statuses.items():
        print(f"  {label}: {dict(sorted(seen.items()))}")
    # The credentials were right: every webhook got past its auth at least once.
    for label, seen in statuses.items():
        assert set(seen) - {401, 403}, f"{label} never got past its auth: {seen}"


def test_the_document_names_every_endpoint_and_no_secret(
    live: LiveBridge, session: requests.Session
) -> None:
    response = session.get(f"{live.base}/openapi.json", timeout=10)
    assert response.status_code == 200
    for secret in (TOKEN, SECRET, TELEGRAM_SECRET, live.twilio_token, live.slack_secret):
        assert secret not in response.text
    document = response.json()
    expected = {f"/webhooks/sms/{kind}/{{token}}" for kind in FAKES if kind != "twilio"}
    expected |= {"/webhooks/sms/smsmobileapi", "/webhooks/sms/twilio"}
    expected |= {"/webhooks/telegram/support", "/webhooks/slack/team"}
    expected |= {"/healthz", "/metrics", "/openapi.json"}
    expected |= {"/media/{token}"}  # Twilio sends MMS, and it fetches the files there
    assert set(document["paths"]) == expected
    assert set(document["components"]["securitySchemes"]) == {
        "smsmobileapiSignature",
        "smsmobileapiTimestamp",
        "smsgateSignature",
        "smsgateTimestamp",
        "twilioSignature",
        "telegramSecret",
        "slackSignature",
        "slackTimestamp",
    }


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nowhere", 404),
        ("POST", "/webhooks/sms/ip1/a/b", 404),
        ("POST", "/webhooks/sms/unknown/" + TOKEN, 404),
        ("POST", "/webhooks/irc/support", 404),
        ("GET", "/webhooks/sms/ip1/" + TOKEN, 405),
        ("GET", "/webhooks/slack/team", 405),
        ("POST", "/healthz", 405),
        ("DELETE", "/webhooks/sms/twilio", 405),
    ],
)
def test_unknown_routes_and_methods_are_refused_with_the_error_body(
    live: LiveBridge, session: requests.Session, method: str, path: str, status: int
) -> None:
    response = session.request(method, f"{live.base}{path}", data=b"{}", timeout=10)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert set(response.json()) == {"error"} and response.json()["error"]
    if status == 405:
        assert response.headers["allow"]


def test_a_body_over_the_limit_is_refused_with_413_and_the_error_body(
    live: LiveBridge, session: requests.Session
) -> None:
    url = f"{live.base}/webhooks/sms/smstools/{TOKEN}"
    response = session.post(url, data=b"x" * (MAX_BODY + 1), timeout=10)
    assert response.status_code == 413
    assert "error" in response.json()


@pytest.mark.parametrize(
    "fields",
    [
        {"guid": "g" * 300},  # longer than the provider_id column
        {"message": "a\x00b"},  # PostgreSQL text takes no NUL
        {"guid": "nul\x00id"},
        {"message": "lone \ud800 surrogate"},  # JSON can carry one; no database takes it
    ],
    ids=["long-id", "nul-text", "nul-id", "lone-surrogate"],
)
def test_what_the_store_cannot_hold_is_made_to_fit_and_accepted(
    live: LiveBridge, session: requests.Session, fields: dict[str, str]
) -> None:
    unique = f"fit-{len(json.dumps(fields))}-{next(iter(fields))}"  # not a redelivery
    body = {"guid": unique, "number": "+15551230000", "message": "hello"} | fields
    url = f"{live.base}/webhooks/sms/smsmobileapi/{TOKEN}"
    response = session.post(url, data=json.dumps(body).encode(), timeout=10)
    assert response.status_code == 202, response.text
