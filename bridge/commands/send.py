"""``smsbridge send``: one SMS through the outbox, followed until its status is final."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import socket
import sys
import time
import uuid
from typing import Any

from bridge.commands.common import (
    base_url,
    config_option,
    fetch_health,
    iso,
    load,
    open_store,
    usage,
)
from bridge.config import Config, secrets_of
from bridge.errors import StoreNotReady
from bridge.logs import Redactor
from bridge.models import Outbox, Status
from bridge.phone import InvalidNumber, parse_dialable
from bridge.render import outbound_echo
from bridge.store.records import OutboundRequest
from bridge.store.sql import SqlStore

ORIGIN = "cli"  # origin_chat of SMS sent from here; with a fresh uuid, one outbox row each
POLL = 0.5  # seconds between looks at the SMS's status
ECHO_LIMIT = 4096  # the smallest chat text limit (Telegram's); the SMS itself is never cut
FINAL = (Status.SENT, Status.DELIVERED, Status.FAILED)
EXIT_NOT_YET = 3
DESCRIPTION = """\
Send one SMS, to test a gateway from a shell. The SMS is committed to the store's outbox,
exactly as a reply from a chat is, and the running bridge sends it: the one instance that
holds the gateway's send duty, whether one instance runs or many, with the bridge's
retries and its check after a crash that an SMS did not already go out. This command never
calls the gateway itself, because a second sender beside the outbox could send the SMS
twice. The SMS is shown in the number's thread of every chat that mirrors the gateway,
with its status. Its status is printed as it changes until it is sent, delivered or failed,
or --wait ends. If no bridge answers on /healthz, the SMS stays queued and goes out when a
bridge runs.

exit codes: 0 sent or delivered; 1 failed, or no bridge answering (the SMS stays queued);
2 a usage error (a bad number, an unknown gateway); 3 still on its way when --wait ended
(it stays in the outbox and the bridge goes on with it)."""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "send",
        help="send one SMS through the outbox and show its status",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    config_option(parser)
    parser.add_argument("--to", required=True, help="the number, E.164 (+15551234567)")
    parser.add_argument("--text", required=True, help="the SMS text")
    parser.add_argument("--gateway", "-g", help="needed when the config has several")
    parser.add_argument(
        "--wait", type=float, default=60.0, help="seconds to follow its status (default 60)"
    )
    parser.add_argument("--url", help="the bridge instance to check, e.g. http://10.0.0.5:8080")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load(args.config)
    if config is None:
        return 2
    try:
        number = parse_dialable(args.to, config.default_region)
    except InvalidNumber as exc:
        return usage("send", f"--to: {exc}")
    if not args.text.strip():
        return usage("send", "--text: the SMS is empty")
    if args.wait < 0:
        return usage("send", "--wait: must be 0 or more seconds")
    names = [g.name for g in config.gateways]
    gateway = args.gateway or (names[0] if len(names) == 1 else None)
    if gateway is None:
        return usage("send", f"--gateway: the config has several ({', '.join(names)})")
    if gateway not in names:
        return usage("send", f"--gateway: no gateway named {gateway!r} (known: {', '.join(names)})")
    try:
        return asyncio.run(_send(config, args, gateway, number))
    except StoreNotReady as exc:
        print(f"smsbridge send: {exc}; nothing was queued", file=sys.stderr)
        return 1
    except Exception as exc:  # the database: say so, without a traceback (nor a password)
        shown = Redactor(secrets_of(config)).redact(f"{type(exc).__name__}: {exc}")
        print(f"smsbridge send: the store failed ({shown})", file=sys.stderr)
        return 1


async def _send(config: Config, args: argparse.Namespace, gateway: str, number: str) -> int:
    health = await fetch_health(base_url(config, args.url))
    store = await open_store(config, read_only=False)
    try:
        if store.db.dialect != "sqlite":
            # The outbox's worker runs in a bridge process: wake it with a NOTIFY that
            # commits with the SMS. (On SQLite it finds the SMS within its idle poll, 2 s.)
            store.shared.elsewhere = lambda _kind, _name: True
        author = f"smsbridge send ({_who()})"
        echo = outbound_echo(author, args.text, ECHO_LIMIT, to=number)
        chats = config.routes_value().mirrors_for(gateway)
        request = OutboundRequest(
            gateway=gateway,
            number=number,
            text=args.text,
            origin_chat=ORIGIN,
            origin_message_id=uuid.uuid4().hex,
            author=author,
            mirrored=False,
        )
        outbox_id = await store.outbound.enqueue(request, tuple((c, echo) for c in chats))
        assert outbox_id is not None  # a fresh uuid: never a duplicate
        print(f"SMS {outbox_id} to {number} via {gateway}: queued in the outbox")
        if not health.reachable:
            print(
                f"smsbridge send: no bridge answers at {health.url or '?'}/healthz "
                f"({health.error}). SMS {outbox_id} stays queued in the outbox and goes out "
                "when the bridge runs.",
                file=sys.stderr,
            )
            return 1
        if health.code != 200:
            print(f"smsbridge send: warning: the bridge reports itself down ({health.url})")
        await _warn_unowned(store, gateway)
        return await _follow(store, outbox_id, args.wait)
    finally:
        await store.close()


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (a container)
        user = "?"
    return f"{user}@{socket.gethostname()}"


async def _warn_unowned(store: SqlStore, gateway: str) -> None:
    duty = f"send:{gateway}"
    if not any(h.name == duty and h.left > 0 for h in await store.leases.holders()):
        print(f"smsbridge send: warning: no instance holds {duty} now; the SMS waits for one")


async def _follow(store: SqlStore, outbox_id: int, wait: float) -> int:
    deadline = time.monotonic() + wait
    shown: tuple[Any, ...] | None = None
    while True:
        sms = await store.outbound.by_id(outbox_id)
        state = (sms.status, sms.reason, sms.attempts)
        if state != shown:
            shown = state
            print(f"{iso(time.time())}  SMS {outbox_id}: {_describe(sms)}", flush=True)
        if sms.status in FINAL:
            return 1 if sms.status is Status.FAILED else 0
        if time.monotonic() >= deadline:
            print(
                f"SMS {outbox_id} is still {sms.status.value} after {wait:g} s: it stays in "
                "the outbox and the bridge goes on with it"
            )
            return EXIT_NOT_YET
        await asyncio.sleep(POLL)


def _describe(sms: Outbox) -> str:
    if sms.status is Status.FAILED:
        return f"failed: {sms.reason or 'the gateway gave no reason'}"
    if sms.status is Status.PENDING:
        if sms.reason:
            return f"pending, attempt {sms.attempts} failed, will retry: {sms.reason}"
        return "pending (waiting for the bridge to send it)"
    provider = f" (gateway id {sms.provider_id})" if sms.provider_id else ""
    accepted = ", accepted by the gateway" if sms.status is Status.QUEUED else ""
    return f"{sms.status.value}{accepted}{provider}"
