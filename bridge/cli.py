"""``smsbridge run | check | route | demo | status | conversations | send | contacts``: the CLI.

The operator commands live in bridge/commands/, one module each, registering their own
arguments; this module parses and dispatches."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from bridge import logs
from bridge.commands.common import load as _load
from bridge.config import Config, secrets_of
from bridge.errors import InvalidSender, StoreInUse
from bridge.phone import sender
from bridge.routeconf import describe, span, warnings
from bridge.rules import Decision, Routes, Rule


def cmd_check(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 2
    print(f"config OK: {args.config}")
    for gateway in config.gateways:
        print(f"  gateway {gateway.name}: {gateway.type}, receive by {gateway.receive}")
    for chat in config.chats:
        threads = "topics" if getattr(chat, "threaded", False) else "replies"
        print(f"  chat {chat.name}: {chat.type} ({threads})")
        if not getattr(chat, "allowed_user_ids", None):
            print(
                f"  warning: chat {chat.name} has no allowed_user_ids: nobody can send SMS from it"
            )
    routes = config.routes_value()
    for rule in routes.rules:
        print(f"  route {rule.name}: {describe(rule)}")
    print(f"  store: {config.store.url.split('://', 1)[0]}")
    for warning in warnings(routes):
        print(f"  warning: {warning}")
    return 0


AT_HELP = (
    "when the SMS arrives, for routes with hours: ISO 8601 such as 2026-12-03T09:00+01:00; "
    "without an offset it is UTC (2026-12-03T09:00 is 10:00 in Brussels); default: now"
)


def cmd_route(args: argparse.Namespace) -> int:
    """Where an SMS would go, without sending, storing or posting anything."""
    config = _load(args.config)
    if config is None:
        return 2
    names = [g.name for g in config.gateways]
    if args.gateway is not None and args.gateway not in names:
        return _usage(f"--gateway: no gateway named {args.gateway!r} (known: {', '.join(names)})")
    try:
        at = datetime.fromisoformat(args.at) if args.at else datetime.now(UTC)
    except ValueError:
        return _usage(f"--at: {args.at!r} is not a date and time (e.g. 2026-12-03T09:00)")
    at = (at if at.tzinfo else at.replace(tzinfo=UTC)).replace(microsecond=0)
    try:
        number = sender(args.sender, "--from", config.default_region)
    except InvalidSender as exc:
        return _usage(exc.reason)
    routes = config.routes_value()
    for gateway in [args.gateway] if args.gateway else names:
        decision = routes.evaluate(
            gateway, number, args.text, at=at, device=args.to, sim=args.sim, explain=True
        )
        print(f"gateway {gateway}: SMS from {number} at {at.isoformat()}")
        _explain(routes, gateway, decision)
    return 0


def _usage(message: str) -> int:
    print(f"smsbridge route: {message}", file=sys.stderr)
    return 2


def _explain(routes: Routes, gateway: str, decision: Decision) -> None:
    def label(rule: Rule) -> str:
        index = next(i for i, r in enumerate(routes.rules) if r is rule)
        where = f"routes[{index}]"
        return where if rule.name == where else f"{rule.name} ({where})"

    skipped = {id(rule): why for rule, why in decision.skipped}
    matched = {id(rule) for rule in decision.matched}
    for rule in routes.for_gateway(gateway):
        if id(rule) in matched:
            how = ": drop" if rule.action == "drop" else ""
            if rule.continue_ and not rule.catch_all:
                how = ": continue"
            print(f"  match    {label(rule)}{how}")
        elif id(rule) in skipped:
            print(f"  no       {label(rule)}: {skipped[id(rule)]} does not match")
        else:
            print(f"  -        {label(rule)}: not reached")
    for delivery in decision.deliveries:
        thread = f"thread {delivery.thread!r}" if delivery.thread else "a thread per number"
        options = [thread, *(["replies refused"] if not delivery.replies else [])]
        if delivery.collapse:
            options.append(f"collapse {span(delivery.collapse)}")
        print(f"  => {delivery.chat}: {', '.join(options)}")
    if decision.dropped:
        print(f"  => dropped by {label(decision.matched[-1])}: stored, counted, not posted")
    elif decision.unrouted:
        print("  => unrouted: stored, counted, not posted")


async def _run(config: Config) -> None:
    from bridge.app import Bridge  # imports the connectors' libraries: only when running

    # Python's default 5 ms GIL switch interval is kept on purpose: 1 ms made single commits
    # faster when idle, but under load the event loop and the aiosqlite threads then hand the
    # GIL back and forth so often that the latency bench had ~1 s stalls in a quarter of its
    # runs (p99 up to 78 ms); at 5 ms, 15 of 15 runs kept p99 under 18 ms.

    bridge = Bridge(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await bridge.start()
    try:
        await stop.wait()
    finally:
        await bridge.stop()


def cmd_run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 2
    logs.setup(
        args.log_level or config.log_level,
        secrets_of(config),
        fmt=config.log_format,
        numbers=config.log_numbers,
    )
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(_run(config))
    except StoreInUse as exc:
        if config.log_format == "json":  # every line a log stack reads must be JSON
            logging.getLogger("bridge").error("%s", exc)
        else:
            print(f"smsbridge: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from bridge.demo import run_demo

    logs.setup("WARNING")
    return asyncio.run(run_demo())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="smsbridge", description="Bridge SMS gateways to team chat, one thread per number."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the bridge")
    run.add_argument("--config", "-c", required=True, help="path to config.yaml")
    run.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    run.set_defaults(func=cmd_run)
    check = commands.add_parser("check", help="validate a config file and exit")
    check.add_argument("--config", "-c", required=True)
    check.set_defaults(func=cmd_check)
    route = commands.add_parser(
        "route",
        help="show which routes an SMS matches and where it would go (no side effects)",
        description="Evaluate the routes of a config for one SMS. Nothing is stored, sent or "
        "posted; the store is not opened. Without --gateway, every gateway is shown.",
    )
    route.add_argument("--config", "-c", required=True)
    route.add_argument("--from", dest="sender", required=True, help="the sender")
    route.add_argument("--text", default="", help="the SMS text")
    route.add_argument("--to", help="the number or device that received it (what `to` matches)")
    route.add_argument("--sim", type=int, help="the SIM slot that received it (1, 2)")
    route.add_argument("--gateway", "-g", help="the gateway that received it")
    route.add_argument("--at", help=AT_HELP)
    route.set_defaults(func=cmd_route)
    demo = commands.add_parser(
        "demo", help="a whole round trip against built-in fake gateway and Telegram servers"
    )
    demo.set_defaults(func=cmd_demo)
    given = list(sys.argv[1:] if argv is None else argv)
    if given[:1] != ["run"]:
        # Not for `run`: the operator commands' modules (store reports, CSV) would stay in the
        # bridge's memory for nothing (0.6 MB, measured).
        from bridge.commands import contacts, conversations, send, status

        for command in (status, conversations, send, contacts):
            command.add_parser(commands)
    args = parser.parse_args(given)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
