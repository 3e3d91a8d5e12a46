"""``smsbridge contacts import FILE`` and ``smsbridge contacts export``: people's names for numbers.

An imported name is a person's name: it wins over the alias a gateway reports, and every
thread of a number whose name changed is retitled by the running bridge.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import vobject

from bridge.commands.common import config_option, load, open_store, usage
from bridge.config import Config, secrets_of
from bridge.errors import StoreNotReady
from bridge.logs import Redactor
from bridge.phone import InvalidNumber, parse_dialable

NAME_LENGTH = 255  # contacts.name
_TEL_LINE = re.compile(r"^(?:[\w-]+\.)?TEL[;:]", re.IGNORECASE)
DESCRIPTION = """\
import: read names for numbers from a vCard (3.0 or 4.0) or CSV file and store them. The
format is told by the extension (.vcf, .vcard, .csv), else by the content. A CSV file has a
header row with the columns number and name (others are ignored). Numbers are read with the
config's default_region when they have no country code. A bad row (no name, a number that is
no phone number) is named with its line number on stderr and skipped; a vCard with several
numbers gives each the card's name. Threads of numbers whose name changed are renamed.

export: write every named number as CSV (number,name) or vCard 3.0, to stdout or --output.

exit codes: 0 the file was read (even if every row was bad: they are listed) or the export
written; 1 the file cannot be read, its format is unknown, or the store failed; 2 a usage
error (a bad config)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One row (a CSV line, a vCard's number), or why it is broken before it has one."""

    line: int
    number: str = ""
    name: str | None = None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Parsed:
    names: dict[str, str]  # number (E.164) -> name; a later row for a number wins
    rows: int  # rows (CSV lines, vCard numbers) taken
    bad: list[str]  # "line N: why"


class Unreadable(Exception):
    """The file as a whole cannot be imported."""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "contacts",
        help="import or export people's names for numbers (vCard, CSV)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", required=True)
    take = actions.add_parser("import", help="store the names in a vCard or CSV file")
    config_option(take)
    take.add_argument("file", help="a .vcf (vCard 3/4) or .csv (number,name) file")
    take.set_defaults(func=run_import)
    give = actions.add_parser("export", help="write every named number as CSV or vCard")
    config_option(give)
    give.add_argument("--format", "-f", choices=["csv", "vcf"], default="csv")
    give.add_argument("--output", "-o", help="the file to write (default: stdout)")
    give.set_defaults(func=run_export)


def run_import(args: argparse.Namespace) -> int:
    config = load(args.config)
    if config is None:
        return 2
    try:
        text = Path(args.file).read_text(encoding="utf-8-sig")
        parsed = parse(text, args.file, config.default_region)
    except (OSError, UnicodeDecodeError, Unreadable) as exc:
        print(f"smsbridge contacts import: {args.file}: {exc}", file=sys.stderr)
        return 1
    for problem in parsed.bad:
        print(f"{args.file}: {problem}; skipped", file=sys.stderr)
    changed = _with_store(config, "import", _store_names(config, parsed.names))
    if changed is None:
        return 1
    print(
        f"imported {parsed.rows}, skipped {len(parsed.bad)} "
        f"({len(parsed.names)} numbers, {changed} names changed)"
    )
    return 0


def run_export(args: argparse.Namespace) -> int:
    config = load(args.config)
    if config is None:
        return 2
    names = _with_store(config, "export", _read_names(config))
    if names is None:
        return 1
    body = to_vcf(names) if args.format == "vcf" else to_csv(names)
    if args.output is None:
        sys.stdout.write(body)
        return 0
    try:
        Path(args.output).write_text(body, encoding="utf-8", newline="")
    except OSError as exc:
        return usage("contacts export", f"--output: {exc}")
    print(f"exported {len(names)} to {args.output}", file=sys.stderr)
    return 0


def _with_store(config: Config, action: str, work: Any) -> Any:
    try:
        return asyncio.run(work)
    except StoreNotReady as exc:
        print(f"smsbridge contacts {action}: {exc}", file=sys.stderr)
    except Exception as exc:  # the database: say so, without a traceback (nor a password)
        shown = Redactor(secrets_of(config)).redact(f"{type(exc).__name__}: {exc}")
        print(f"smsbridge contacts {action}: the store failed ({shown})", file=sys.stderr)
    return None


async def _store_names(config: Config, names: dict[str, str]) -> int:
    store = await open_store(config, read_only=False)
    try:
        if store.db.dialect != "sqlite":
            # Wake the chat workers of the running bridge for the renames (a NOTIFY that
            # commits with them; on SQLite they find the jobs within their idle poll).
            store.shared.elsewhere = lambda _kind, _name: True
        return len(await store.desk.set_names(dict(names)))
    finally:
        await store.close()


async def _read_names(config: Config) -> dict[str, str]:
    store = await open_store(config, read_only=True)
    try:
        return {c.number: c.name for c in await store.contacts.all() if c.name}
    finally:
        await store.close()


def parse(text: str, path: str, region: str | None) -> Parsed:
    """Names by number from a vCard or CSV file's text; raises Unreadable."""
    suffix = Path(path).suffix.lower()
    if suffix in (".vcf", ".vcard") or (
        suffix != ".csv" and text.lstrip().upper().startswith("BEGIN:VCARD")
    ):
        return _collect(_vcards(text), region)
    first = text.lstrip().split("\n", 1)[0].lower()
    if suffix == ".csv" or "number" in first:
        return _collect(_csv_rows(text), region)
    raise Unreadable("neither vCard nor CSV (name it .vcf or .csv)")


def _collect(rows: Iterator[Entry], region: str | None) -> Parsed:
    names: dict[str, str] = {}
    bad: list[str] = []
    taken = 0
    for row in rows:
        line, raw, name = row.line, row.number, " ".join((row.name or "").split())
        if row.problem is not None:
            bad.append(f"line {line}: {row.problem}")
            continue
        if not raw.strip():
            bad.append(f"line {line}: no number")
        elif not name:
            bad.append(f"line {line}: no name for {raw.strip()}")
        elif len(name) > NAME_LENGTH:
            bad.append(f"line {line}: the name has over {NAME_LENGTH} characters")
        else:
            try:
                names[parse_dialable(raw, region)] = name
                taken += 1
            except InvalidNumber as exc:
                bad.append(f"line {line}: {exc}")
    return Parsed(names, taken, bad)


def _csv_rows(text: str) -> Iterator[Entry]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise Unreadable("the file is empty") from None
    if "number" not in header or "name" not in header:
        raise Unreadable("the CSV header needs the columns number and name")
    number, name = header.index("number"), header.index("name")
    start = reader.line_num
    for values in reader:
        line, start = start + 1, reader.line_num
        if not any(v.strip() for v in values):
            continue  # a blank line
        if len(values) <= max(number, name):
            yield Entry(line, problem=f"{len(values)} columns, the header has {len(header)}")
            continue
        yield Entry(line, values[number], values[name])


def _vcards(text: str) -> Iterator[Entry]:
    """Each number of each card with the card's name, at the line of its TEL."""
    lines = text.splitlines()
    begin: int | None = None
    for index, line in enumerate(lines):
        if line.strip().upper() == "BEGIN:VCARD":
            begin = index
        elif line.strip().upper() == "END:VCARD" and begin is not None:
            yield from _vcard(lines[begin : index + 1], begin + 1)
            begin = None
    if begin is not None:
        yield Entry(begin + 1, problem="a vCard without END:VCARD")


def _vcard(lines: list[str], first: int) -> Iterator[Entry]:
    try:
        card = vobject.readOne("\r\n".join(lines) + "\r\n")
    except Exception as exc:  # vobject raises ParseError and others on broken cards
        yield Entry(first, problem=f"not a valid vCard ({exc})")
        return
    name = _card_name(card)
    tels = [str(t.value) for t in card.contents.get("tel", [])]
    at = [first + i for i, line in enumerate(lines) if _TEL_LINE.match(line)]
    if not tels:
        yield Entry(first, problem=f"a vCard with no number ({name or 'no name'})")
    for index, tel in enumerate(tels):
        # vCard 4 writes a number as a URI (tel:+1-555-0100;ext=2): the number is its path.
        raw = tel.removeprefix("tel:").split(";", 1)[0] if tel.startswith("tel:") else tel
        yield Entry(at[index] if len(at) == len(tels) else first, raw, name)


def _card_name(card: Any) -> str | None:
    fn = card.contents.get("fn")
    if fn and str(fn[0].value).strip():
        return str(fn[0].value)
    n = card.contents.get("n")
    if not n:
        return None
    return " ".join(str(n[0].value).split()) or None


def to_csv(names: dict[str, str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["number", "name"])
    writer.writerows(sorted(names.items()))
    return out.getvalue()


def to_vcf(names: dict[str, str]) -> str:
    cards = []
    for number, name in sorted(names.items()):
        card = vobject.vCard()
        card.add("fn").value = name
        card.add("n").value = vobject.vcard.Name(given=name)
        tel = card.add("tel")
        tel.value = number
        tel.type_param = "CELL"
        cards.append(card.serialize())
    return "".join(cards)
