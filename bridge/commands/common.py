"""What the operator commands share: the config, the store beside a running bridge, /healthz."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from bridge.config import Config, load_config
from bridge.errors import ConfigError
from bridge.store.engine import Database
from bridge.store.sql import SqlStore

HEALTH_TIMEOUT = 5.0


CONFIG_VARIABLE = "SMSBRIDGE_CONFIG"


def config_option(parser: Any) -> None:
    """``--config``, optional for the operator commands: an operator on the bridge's host
    (`smsbridge send --to N --text T`) need not repeat where its config is."""
    parser.add_argument(
        "--config",
        "-c",
        default=os.environ.get(CONFIG_VARIABLE, "config.yaml"),
        help=f"the bridge's config (default: ${CONFIG_VARIABLE}, else ./config.yaml)",
    )


def load(path: str) -> Config | None:
    """The config, or None after naming each of its problems on stderr."""
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"smsbridge: invalid config {path}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return None


def usage(command: str, message: str) -> int:
    """A usage error: the message on stderr, exit code 2."""
    print(f"smsbridge {command}: {message}", file=sys.stderr)
    return 2


async def open_store(config: Config, *, read_only: bool) -> SqlStore:
    """The store as a running bridge leaves it, without taking it from that bridge.

    The SQLite file is not locked (the bridge holds that lock; SQLite's own locking keeps
    one writer at a time), nothing is created or migrated, and ``read_only`` refuses writes
    at the database. Raises StoreNotReady when there is no store of this version.
    """
    db = Database(config.store.async_url, lock=False, read_only=read_only)
    try:
        await db.check_schema()
    except BaseException:
        await db.dispose()
        raise
    return SqlStore(db)


def base_url(config: Config, override: str | None) -> str | None:
    """Where the running bridge answers: ``--url``, else the config's server address (a
    wildcard address is reached on loopback); None when the port is chosen at random."""
    if override:
        url = override.rstrip("/")
        return url.removesuffix("/healthz")
    host, port = config.server.host, config.server.port
    if port == 0:
        return None
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@dataclass(frozen=True)
class Health:
    url: str | None
    report: dict[str, Any] | None  # None: nobody answered
    code: int | None = None
    error: str | None = None

    @property
    def reachable(self) -> bool:
        return self.report is not None


async def fetch_health(url: str | None) -> Health:
    """The running instance's /healthz report, whatever its status code."""
    if url is None:
        return Health(None, None, error="server.port is 0 (chosen at start): give --url")
    try:
        # Straight to the bridge: a proxy from the environment must not answer for it.
        async with httpx.AsyncClient(timeout=HEALTH_TIMEOUT, trust_env=False) as client:
            response = await client.get(f"{url}/healthz")
        report = response.json()
    except httpx.HTTPError as exc:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return Health(url, None, error=detail)
    except ValueError:
        return Health(url, None, response.status_code, "the answer is not JSON")
    if not isinstance(report, dict):
        return Health(url, None, response.status_code, "the answer is not a JSON object")
    return Health(url, report, response.status_code)


def iso(stamp: float | None) -> str:
    """Unix seconds as ISO 8601 in UTC, to the second; empty for None."""
    if stamp is None:
        return ""
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def span(seconds: float | None) -> str:
    """A short age for people: 42s, 3m05s, 2h10m, 3d04h; "-" for None."""
    if seconds is None:
        return "-"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"
