"""``smsbridge conversations list | export``: every SMS in and out, for a support lead."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import re
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO, Any

from bridge.commands.common import config_option, iso, load, open_store, usage
from bridge.config import Config
from bridge.errors import StoreNotReady
from bridge.phone import InvalidNumber, normalize
from bridge.store.report import Message, MessageFilter

EXPORT_COLUMNS = (
    "time",
    "direction",
    "gateway",
    "number",
    "alias",
    "text",
    "status",
    "reason",
    "author",
    "chats",
    "provider_id",
    "stored_at",
    "updated_at",
    "id",
)
LIST_COLUMNS = (
    "number",
    "alias",
    "gateway",
    "received",
    "sent",
    "failed",
    "pending",
    "first",
    "last",
    "chats",
)
# A CSV cell starting with = + - @ is a formula to a spreadsheet, and SMS texts are written by
# anyone: such cells get a leading ' (E.164 numbers, which start with "+", are data).
_E164 = re.compile(r"^\+\d+$")
_AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
SINCE_HELP = (
    "only SMS from then on: a date (2026-12-01), a time (2026-12-01T09:00, UTC unless it "
    "has an offset such as +01:00) or an age (90m, 24h, 7d)"
)


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "conversations",
        help="list conversations or export every SMS in and out (CSV or JSON)",
        description="Read the store (read-only; a running bridge keeps it) and write every "
        "SMS in and out with its status and times (export), or one line per conversation "
        "(list). CSV with a header row by default; a CSV cell that a spreadsheet would run "
        "as a formula (starting with = + - @) gets a leading '.",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    for action, about in (
        ("list", "one row per conversation: number, alias, gateway, counts, last SMS"),
        ("export", "one row per SMS, in and out, oldest first"),
    ):
        sub = actions.add_parser(action, help=about, description=about)
        config_option(sub)
        sub.add_argument("--format", choices=["csv", "json"], default="csv")
        sub.add_argument("--number", help="only this number (normalised as the bridge does)")
        sub.add_argument("--chat", help="only SMS shown in (or sent from) this chat")
        sub.add_argument("--gateway", "-g", help="only SMS through this gateway")
        sub.add_argument("--since", help=SINCE_HELP)
        sub.add_argument("--output", "-o", help="write to this file instead of stdout")
        sub.set_defaults(func=run)


def parse_since(value: str, at: float | None = None) -> float:
    """Unix seconds for ``--since``; ValueError with a message for people otherwise."""
    text = value.strip()
    age = _AGE.match(text.lower())
    if age:
        return (time.time() if at is None else at) - float(age.group(1)) * _UNIT[age.group(2)]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--since: {value!r} is not a date, a time or an age ({SINCE_HELP})"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def run(args: argparse.Namespace) -> int:
    config = load(args.config)
    if config is None:
        return 2
    command = f"conversations {args.action}"
    try:
        where = _filter(args, config)
    except ValueError as exc:
        return usage(command, str(exc))
    if args.chat and args.chat not in {c.name for c in config.chats}:
        print(
            f"smsbridge {command}: note: no chat named {args.chat!r} in the config", file=sys.stderr
        )
    try:
        messages = asyncio.run(_read(config, where))
    except StoreNotReady as exc:
        print(f"smsbridge {command}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # the database: say so, without a traceback
        print(f"smsbridge {command}: the store failed ({type(exc).__name__})", file=sys.stderr)
        return 1
    rows = list(_export(messages) if args.action == "export" else _summary(messages))
    columns = EXPORT_COLUMNS if args.action == "export" else LIST_COLUMNS
    try:
        with _opened(args.output) as out:
            _write(out, args.format, columns, rows)
    except OSError as exc:
        return usage(command, f"--output: cannot write {args.output} ({exc.strerror})")
    return 0


def _filter(args: argparse.Namespace, config: Config) -> MessageFilter:
    number = None
    if args.number is not None:
        try:
            number = normalize(args.number, config.default_region)
        except InvalidNumber as exc:
            raise ValueError(f"--number: {exc}") from None
    since = parse_since(args.since) if args.since else None
    return MessageFilter(number=number, chat=args.chat, gateway=args.gateway, since=since)


async def _read(config: Config, where: MessageFilter) -> list[Message]:
    store = await open_store(config, read_only=True)
    try:
        return await store.report.messages(where)
    finally:
        await store.close()


def _export(messages: list[Message]) -> Iterator[dict[str, Any]]:
    for m in messages:
        yield {
            "time": iso(m.time),
            "direction": m.direction,
            "gateway": m.gateway,
            "number": m.number,
            "alias": m.alias,
            "text": m.text,
            "status": m.status,
            "reason": m.reason,
            "author": m.author,
            "chats": m.chats,
            "provider_id": m.provider_id,
            "stored_at": iso(m.stored_at),
            "updated_at": iso(m.updated_at),
            "id": m.id,
        }


def _summary(messages: list[Message]) -> Iterator[dict[str, Any]]:
    """One row per (gateway, number), in the order of their last SMS, newest first."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for m in messages:  # oldest first: the last one seen wins "last" and the alias
        row = rows.setdefault(
            (m.gateway, m.number),
            {
                "number": m.number,
                "gateway": m.gateway,
                "received": 0,
                "sent": 0,
                "failed": 0,
                "pending": 0,
                "first": m.time,
                "chats": set(),
            },
        )
        row["alias"] = m.alias or row.get("alias")
        row["last"] = m.time
        row["chats"].update(m.chats)
        if m.direction == "in":
            row["received"] += 1
        elif m.status == "failed":
            row["failed"] += 1
        elif m.status == "pending":
            row["pending"] += 1
        else:
            row["sent"] += 1
    for row in sorted(rows.values(), key=lambda r: r["last"], reverse=True):
        yield {
            **{k: row.get(k) for k in LIST_COLUMNS},
            "first": iso(row["first"]),
            "last": iso(row["last"]),
            "chats": sorted(row["chats"]),
        }


@contextlib.contextmanager
def _opened(path: str | None) -> Iterator[IO[str]]:
    if path is None:
        yield sys.stdout
        return
    with open(path, "w", encoding="utf-8", newline="") as out:
        yield out


def _write(out: IO[str], form: str, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    if form == "json":
        json.dump(rows, out, ensure_ascii=False, indent=1)
        out.write("\n")
        return
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list):
        value = " ".join(value)
    if isinstance(value, str) and value[:1] in "=+-@\t\r" and value and not _E164.match(value):
        return "'" + value  # shown, not run, by a spreadsheet
    return value
