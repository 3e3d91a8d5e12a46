"""Several ``smsbridge run`` processes on one store, for the scale-out benchmark."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import IO, Any

import httpx
import sqlalchemy as sa
import yaml
from sqlalchemy.ext.asyncio import create_async_engine

from bench.common import ROOT, blast

# The machine's PostgreSQL (trust auth); the bench creates and drops its own databases there.
PG_ADMIN = os.environ.get("SMSBRIDGE_BENCH_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


async def _admin(sql: str) -> None:
    engine = create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text(sql))
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def pg_database() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database; its store URL. Dropped afterwards."""
    name = f"smsbridge_bench_{os.getpid()}_{secrets.token_hex(3)}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.asynccontextmanager
async def store(kind: str, tmp: Path) -> AsyncIterator[str]:
    """A fresh store URL: ``sqlite`` (a file in ``tmp``) or ``postgresql`` (its own database)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'bench.db'}"
    else:
        async with pg_database() as url:
            yield url


async def query(url: str, sql: str) -> tuple[Any, ...]:
    """The first row of a query against the store a bench's bridges used."""
    if url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            return tuple(conn.execute(sql).fetchone())
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return tuple((await conn.execute(sa.text(sql))).one())
    finally:
        await engine.dispose()


async def spread(ports: list[int], requests: list[bytes], connections: int) -> tuple[float, int]:
    """Request i to instance i mod n, as a round-robin load balancer does; (seconds, not 2xx)."""
    per_instance = max(1, connections // len(ports))
    start = time.perf_counter()
    results = await asyncio.gather(
        *(blast(port, requests[i :: len(ports)], per_instance) for i, port in enumerate(ports))
    )
    seconds = time.perf_counter() - start
    return seconds, sum(1 for _, statuses in results for s in statuses if not 200 <= s < 300)


class Instance:
    """One ``python -m bridge.cli run`` child process; it can be killed and started again."""

    def __init__(self, config: dict[str, Any], tmp: Path, name: str) -> None:
        self.name = name
        self.port = int(config["server"]["port"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = tmp / f"{name}.yaml"
        self.config.write_text(yaml.safe_dump(config))
        self.log = tmp / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    def start(self) -> None:
        self._log_file = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bridge.cli", "run", "--config", str(self.config)],
            cwd=ROOT,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    async def healthy(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109 - a polling helper
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(trust_env=False, timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.url}/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} not healthy within {timeout} s:\n{self.tail()}")

    async def health(self) -> dict[str, Any]:
        """The /healthz report, whatever its status code."""
        async with httpx.AsyncClient(trust_env=False, timeout=2.0) as client:
            report: dict[str, Any] = (await client.get(f"{self.url}/healthz")).json()
        return report

    async def duties(self) -> dict[str, str]:
        """duty name -> "active" / "standby" / ..., as /healthz reports them."""
        report = await self.health()
        return {name: str(d.get("state")) for name, d in report.get("duties", {}).items()}

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, leases are left to expire."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self._reap()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._reap()

    def _reap(self) -> None:
        if self.proc is not None:
            self.proc.wait(10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@contextlib.asynccontextmanager
async def running(
    configs: Sequence[dict[str, Any]], tmp: Path, prefix: str = "bridge"
) -> AsyncIterator[list[Instance]]:
    """Start one instance per config, one after the other (the first creates the schema)."""
    instances = [Instance(c, tmp, f"{prefix}-{i + 1}") for i, c in enumerate(configs)]
    try:
        for instance in instances:
            instance.start()
            await instance.healthy()
        yield instances
    finally:
        for instance in instances:
            instance.stop()


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], left: int = 1) -> str:
    """A plain fixed-width table: the first ``left`` columns left-aligned, the figures right."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        cols = enumerate(zip(row, widths, strict=True))
        return "  " + "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in cols)

    rule = "  " + "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])
