"""Shared fixtures: fakes on loopback, stores on SQLite and real PostgreSQL, running bridges."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Generic, TypeVar

import asyncpg
import pytest

from bridge.app import Bridge
from bridge.config import Config, parse_config
from bridge.testing.fake_harness import drained, idle
from connectors.chat.telegram.fake import FakeLimits, FakeTelegram
from connectors.sms.smsmobileapi.fake import FakeSmsMobileApi

GROUP = -1001234567890
AGENT = 111
STRANGER = 666
CUSTOMER = "+15551234567"
PG_ADMIN_URL = os.environ.get("SMSBRIDGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
HOOK_TOKEN = "hook-token-0123456789abcdef"


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every test talks to loopback only; a developer's proxy settings must not reroute it.
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)


def run_sync(coroutine: Any) -> Any:
    """Run a coroutine to completion from sync code, even inside a running test loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def _pg_execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _start_local_postgres() -> None:
    """The machine's cluster may simply be stopped; start it the way .ci/run does."""
    clusters = Path("/etc/postgresql")
    if shutil.which("pg_ctlcluster") is None or not clusters.is_dir():
        return
    for version in sorted(p.name for p in clusters.iterdir()):
        subprocess.run(  # noqa: S603 - fixed command, no user input
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],  # noqa: S607
            check=False,
            capture_output=True,
        )
    for _ in range(30):
        try:
            run_sync(_pg_execute(PG_ADMIN_URL, "SELECT 1"))
            return
        except OSError:
            time.sleep(1)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A scratch database on the machine's PostgreSQL (not skipped: CI has it)."""
    name = f"smsbridge_test_{os.getpid()}_{secrets.token_hex(3)}"
    create = _pg_execute(PG_ADMIN_URL, f'CREATE DATABASE "{name}"')
    try:
        try:
            run_sync(create)
        except OSError:
            _start_local_postgres()
            run_sync(_pg_execute(PG_ADMIN_URL, f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"PostgreSQL at {PG_ADMIN_URL} is needed ({exc}); start it with "
            "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
        )
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    run_sync(_pg_execute(PG_ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def pg_url(pg_server: str) -> str:
    """The scratch PostgreSQL database, emptied for each test."""
    run_sync(_pg_execute(pg_server, "DROP SCHEMA public CASCADE; CREATE SCHEMA public;"))
    return pg_server


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def gateway() -> AsyncIterator[FakeSmsMobileApi]:
    async with FakeSmsMobileApi() as fake:
        yield fake


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    """The fake with the forum and the agent's private chat; on exit (after every bridge using
    it has stopped), nothing the Bot API spec forbids: the fake answers "ok" to calls with
    unknown or mistyped fields, like Telegram, and only records them."""
    async with FakeTelegram(limits=FakeLimits.off()) as fake:
        fake.add_forum(GROUP, "Support")
        fake.add_private(AGENT, "Sam")
        yield fake
        assert fake.violations == [], fake.violations


def telegram_section(telegram: FakeTelegram, name: str = "support") -> dict[str, Any]:
    """The config of a Telegram forum chat on the fake, with pacing out of the way."""
    return {
        "name": name,
        "type": "telegram",
        "bot_token": telegram.token,
        "chat_id": GROUP,
        "base_url": telegram.base_url,
        "allowed_user_ids": [AGENT],
        "poll_timeout": 1,
        "pacing": {
            "chat": {"messages": 1000, "seconds": 1},
            "group": {"messages": 1000, "seconds": 1},
            "overall": {"messages": 1000, "seconds": 1},
        },
    }


def config_dict(
    store_url: str, gateway: FakeSmsMobileApi, telegram: FakeTelegram, /, **overrides: Any
) -> dict[str, Any]:
    """A config for the fakes; fast pacing unless a test asks for Telegram's."""
    gateway_section: dict[str, Any] = {
        "name": "office",
        "type": "smsmobileapi",
        "api_key": gateway.api_key,
        "base_url": gateway.base_url,
        "receive": "webhook",
        "webhook_token": HOOK_TOKEN,
        "webhook_secret": gateway.webhook_secret,
        "poll_interval": 0.2,
        "status_poll_interval": 3600,
    }
    chat_section = telegram_section(telegram)
    gateway_section.update(overrides.pop("gateway", {}))
    chat_section.update(overrides.pop("chat", {}))
    data: dict[str, Any] = {
        "store": {"url": store_url},
        "server": {"host": "127.0.0.1", "port": 0},
        "gateways": [gateway_section],
        "chats": [chat_section],
        "routes": [{"gateway": "office", "chat": "support"}],
    }
    data.update(overrides)
    return data


GatewayT = TypeVar("GatewayT")


class Harness(Generic[GatewayT]):
    """A running bridge with its fakes, and the URLs a gateway would call.

    Any gateway fake will do; only ``sms`` needs the SMSMobileAPI one (the ``gateway`` fixture).
    """

    def __init__(self, bridge: Bridge, gateway: GatewayT, telegram: FakeTelegram) -> None:
        self.bridge = bridge
        self.gateway = gateway
        self.telegram = telegram

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.bridge.port}"

    @property
    def signed_hook(self) -> str:
        return f"{self.base}/webhooks/sms/office"

    @property
    def plain_hook(self) -> str:
        return f"{self.base}/webhooks/sms/office/{HOOK_TOKEN}"

    def topics(self) -> list[Any]:
        return [t for t in self.telegram.topics(GROUP) if not t.deleted]

    def posts(self, thread_id: int | None = None) -> list[str]:
        kwargs = {} if thread_id is None else {"thread_id": thread_id}
        return [m.get("text") or "" for m in self.telegram.sent_messages(GROUP, **kwargs)]

    async def idle(self, seconds: float = 5.0) -> None:
        """Until the bridge has recorded everything it posted (a post lands in Telegram a
        moment before its mapping is committed; a person reading it is never that quick)."""
        await idle(self.bridge, seconds)

    async def settled(self, seconds: float = 5.0) -> None:
        """Until the bridge has handled every update the fake handed out (it confirms one only
        after handling it: the next getUpdates offset, or its 2xx to the webhook push) and has
        done all that came of them: nothing left to post, no SMS left to send. Only then does
        "nothing happened" mean the bridge decided so, not that it has not got there yet."""
        await self.telegram.wait_for(lambda: not self.telegram.pending_updates(), seconds)
        await drained(self.bridge, seconds)

    async def sms(self, text: str, number: str = CUSTOMER, **kw: Any) -> Any:
        """An SMS reaching the phone and its signed webhook reaching the bridge."""
        gateway: Any = self.gateway  # a FakeSmsMobileApi: its signed Webhook V2
        sms = gateway.receive_sms(number, text, **kw)
        response = await gateway.deliver_received_v2(self.signed_hook, sms)
        assert response.status_code == 202, response.text
        return sms


@pytest.fixture
def make_config(
    tmp_path: Path, gateway: FakeSmsMobileApi, telegram: FakeTelegram
) -> Callable[..., Config]:
    def make(store_url: str | None = None, **overrides: Any) -> Config:
        url = store_url or f"sqlite:///{tmp_path / 'bridge.db'}"
        return parse_config(config_dict(url, gateway, telegram, **overrides), environ={})

    return make


@pytest.fixture
async def start_bridge(
    make_config: Callable[..., Config], gateway: FakeSmsMobileApi, telegram: FakeTelegram
) -> AsyncIterator[Callable[..., Any]]:
    """``await start_bridge(**config overrides)`` -> Harness; every bridge is stopped after."""
    running: list[Bridge] = []

    async def start(config: Config | None = None, **overrides: Any) -> Harness[FakeSmsMobileApi]:
        bridge = Bridge(config or make_config(**overrides))
        await bridge.start()
        running.append(bridge)
        return Harness(bridge, gateway, telegram)

    yield start
    for bridge in reversed(running):
        await bridge.stop()


@pytest.fixture
async def harness(start_bridge: Callable[..., Any]) -> Harness[FakeSmsMobileApi]:
    result: Harness[FakeSmsMobileApi] = await start_bridge()
    return result
