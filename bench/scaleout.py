"""Scale-out (issue 9): intake over 1 and 2 instances, backlog drain, takeover after kill -9.

Every part runs real ``smsbridge run`` processes on one PostgreSQL database (a fresh one per
configuration, created and dropped on the machine's server) with the fakes in this process.
Prints a table per part; exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass

from bench.cluster import query, running, spread, store, table
from bench.common import GROUP, bridge_config, free_port, workdir
from bench.intake import plain_requests, signed_requests
from connectors.chat.telegram.fake import FakeTelegram
from connectors.sms.smsmobileapi.fake import FakeSmsMobileApi

WARMUP = 500  # webhooks per run before measuring: imports, statement caches, pool connections
MIN_RATE = 1000.0  # req/s, the README's intake target, for every configuration
CONFIGS = (("sqlite", 1), ("postgresql", 1), ("postgresql", 2))
KINDS = ("plain", "signed")


@dataclass
class IntakeRun:
    store: str
    instances: int
    kind: str
    rate: float  # req/s, stored durably (the bridge answers 2xx only once the row is committed)
    rejected: int  # answers other than 2xx
    rows: int  # inbound rows of the measured webhooks
    distinct: int  # distinct texts among them (a duplicate would repeat one)


async def intake_run(
    kind: str, store_kind: str, instances: int, count: int, conns: int
) -> IntakeRun:
    with workdir() as tmp:
        async with FakeSmsMobileApi() as gateway, FakeTelegram() as telegram:
            telegram.add_forum(GROUP)
            async with store(store_kind, tmp) as url:
                configs = [
                    bridge_config(
                        tmp, free_port(), gateway, telegram, fast_pacing=False, store_url=url
                    )
                    for _ in range(instances)
                ]

                def requests(n: int, text: str) -> list[bytes]:
                    if kind == "plain":
                        return plain_requests(n, text)
                    return signed_requests(n, gateway.webhook_secret, text)

                async with running(configs, tmp) as bridges:
                    ports = [b.port for b in bridges]
                    await spread(ports, requests(WARMUP, f"warm-up {kind}"), conns)
                    seconds, rejected = await spread(
                        ports, requests(count, f"intake {kind}"), conns
                    )
                rows, distinct = await query(
                    url,
                    f"SELECT count(*), count(DISTINCT text) FROM inbound "  # noqa: S608 - our own constant
                    f"WHERE text LIKE 'intake {kind} %'",
                )
    return IntakeRun(store_kind, instances, kind, count / seconds, rejected, rows, distinct)


async def intake(count: int, connections: int, rounds: int) -> list[str]:
    """All configurations and kinds, one fresh store and fresh bridges each; the failures."""
    runs: list[IntakeRun] = []
    for _ in range(rounds):
        for store_kind, instances in CONFIGS:
            for kind in KINDS:
                runs.append(await intake_run(kind, store_kind, instances, count, connections))
    failures = []
    rows = []
    for index in range(0, len(runs), len(KINDS)):
        plain, signed = runs[index : index + len(KINDS)]
        label = f"{'SQLite' if plain.store == 'sqlite' else 'PostgreSQL'}, {plain.instances}"
        rows.append(
            [
                label + (" instance" if plain.instances == 1 else " instances"),
                f"{plain.rate:,.0f}",
                f"{signed.rate:,.0f}",
                f"{plain.rows:,} / {signed.rows:,}",
                f"{plain.rejected + signed.rejected}",
            ]
        )
        for run in (plain, signed):
            where = f"intake {run.kind}, {run.store} x{run.instances}"
            if run.rejected or run.rows != count or run.distinct != count:
                failures.append(
                    f"{where}: {run.rejected} not accepted, {run.rows} rows stored "
                    f"({run.distinct} distinct) for {count} webhooks"
                )
            if run.rate < MIN_RATE:
                failures.append(f"{where}: {run.rate:,.0f} req/s < {MIN_RATE:,.0f}")
    for index in range(0, len(runs), len(CONFIGS) * len(KINDS)):
        one = runs[index + 2 : index + 4]
        two = runs[index + 4 : index + 6]
        rows.append(
            [
                "ratio PostgreSQL 2 / 1",
                *(f"{b.rate / a.rate:.2f}" for a, b in zip(one, two, strict=True)),
                "",
                "",
            ]
        )
    print(
        f"\nintake: {count:,} webhooks per run (after {WARMUP} warm-up), {connections} connections"
        " spread round-robin over the instances; a fresh store and fresh bridges per run"
    )
    headers = ["configuration", "plain req/s", "signed req/s", f"rows (exp. {count:,})", "not 2xx"]
    print(table(headers, rows))
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--only", action="append", choices=["intake", "drain", "takeover"], help="repeatable"
    )
    parser.add_argument("--count", type=int, default=10000, help="intake: webhooks per run")
    parser.add_argument("--connections", type=int, default=64, help="intake: client connections")
    parser.add_argument("--rounds", type=int, default=1, help="intake: repeat every configuration")
    parser.add_argument("--sms", type=int, default=600, help="drain: SMS in the backlog")
    parser.add_argument("--numbers", type=int, default=60, help="drain: numbers they come from")
    parser.add_argument(
        "--sequential", action="store_true", help="drain: 1 then 2 instances (default: together)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="takeover: kills in a row")
    args = parser.parse_args()
    parts = args.only or ["intake", "takeover", "drain"]
    failures: list[str] = []
    if "intake" in parts:
        failures += asyncio.run(intake(args.count, args.connections, args.rounds))
    if "takeover" in parts:
        from bench.scaleout_takeover import takeover

        failures += asyncio.run(takeover(args.repeat))
    if "drain" in parts:
        from bench.scaleout_drain import drain

        failures += asyncio.run(drain(args.sms, args.numbers, sequential=args.sequential))
    if failures:
        print("\nTARGETS MISSED:\n" + "\n".join(f"  - {f}" for f in failures))
        raise SystemExit(1)
    print("\nall targets met")


if __name__ == "__main__":
    main()
