"""``smsbridge status``: where a bridge stands, from its store and its /healthz; also a probe."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from bridge.commands.common import (
    Health,
    base_url,
    config_option,
    fetch_health,
    iso,
    load,
    open_store,
    span,
)
from bridge.config import Config, secrets_of
from bridge.errors import StoreNotReady
from bridge.logs import Redactor
from bridge.store.report import CHAT_POSTS, OUTBOUND_SMS, STATUS_JOBS

STORE_TIMEOUT = 15.0  # seconds: a probe must answer even when the database does not
QUEUE_LABELS = {CHAT_POSTS: "chat posts", OUTBOUND_SMS: "outbound SMS", STATUS_JOBS: "status jobs"}
DESCRIPTION = """\
Show where the bridge stands: each gateway (with its watchdog state when the bridge reports
one), each chat, the queues with their depth and the age of their oldest item, the last
errors, and which instance holds which duty. It reads the store (read-only, without taking
the SQLite file from a running bridge) and the running instance's /healthz (server.host and
server.port of the config, or --url). Exit code 0 when all is well, 1 when something is
down (no answer from /healthz, /healthz answers 503, a gateway or chat down, the store
unreadable), 2 for an invalid config."""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "status",
        help="show gateways, chats, queues, errors and duties; exit 1 if down",
        description=DESCRIPTION,
    )
    config_option(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--url", help="the instance to ask, e.g. http://10.0.0.5:8080")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load(args.config)
    if config is None:
        return 2
    report = asyncio.run(collect(config, base_url(config, args.url)))
    text = json.dumps(report, indent=2) if args.json else render(report)
    # Error texts come from libraries (a database driver may quote its DSN): mask secrets.
    print(Redactor(secrets_of(config)).redact(text))
    return 0 if report["ok"] else 1


async def collect(config: Config, url: str | None) -> dict[str, Any]:
    health = await fetch_health(url)
    problems: list[str] = []
    report: dict[str, Any] = {"ok": True, "problems": problems, "bridge": _bridge(health)}
    if report["bridge"]["state"] != "ok":
        problems.append(f"bridge: {_bridge_problem(health)}")
    seen = health.report or {}
    report["gateways"] = _parts(
        {g.name: g.type for g in config.gateways}, seen.get("gateways"), health.reachable
    )
    report["chats"] = _parts(
        {c.name: c.type for c in config.chats}, seen.get("chats"), health.reachable
    )
    for kind, ok in (("gateway", {"ok", "degraded"}), ("chat", {"ok"})):
        for name, part in report[f"{kind}s"].items():
            if health.reachable and part["state"] not in ok:
                why = f" ({part['last_error']})" if part.get("last_error") else ""
                problems.append(f"{kind} {name}: {part['state']}{why}")
    report["workers"] = seen.get("workers", {})
    for name, worker in report["workers"].items():
        if isinstance(worker, dict) and worker.get("state") == "down":
            problems.append(f"worker {name}: down ({worker.get('last_error')})")
    if isinstance(seen.get("store"), dict) and seen["store"].get("state") == "down":
        problems.append(f"store, as the bridge sees it: down ({seen['store'].get('error')})")
    try:
        stored = await asyncio.wait_for(_from_store(config, seen.get("instance")), STORE_TIMEOUT)
    except StoreNotReady as exc:
        stored = {"store": {"state": "not ready", "error": str(exc)}}
    except Exception as exc:  # a probe reports what failed instead of a traceback
        stored = {"store": {"state": "down", "error": f"{type(exc).__name__}: {exc}"}}
    report.update(stored)
    report["store"]["kind"] = config.store.url.split("://", 1)[0].split("+", 1)[0]
    if report["store"]["state"] != "ok":
        problems.append(f"store: {report['store']['state']} ({report['store']['error']})")
    report["ok"] = not problems
    return report


def _bridge(health: Health) -> dict[str, Any]:
    if health.report is None:
        return {"state": "unreachable", "url": health.url, "error": health.error}
    state = health.report.get("status")
    return {
        "state": "ok" if health.code == 200 and state == "ok" else str(state or "down"),
        "url": health.url,
        "http_status": health.code,
        "instance": health.report.get("instance"),
        "uptime": health.report.get("uptime"),
    }


def _bridge_problem(health: Health) -> str:
    if health.report is None:
        return f"no answer from {health.url or 'the bridge'}/healthz ({health.error})"
    return f"{health.url}/healthz answers {health.code} ({health.report.get('status')})"


def _parts(types: dict[str, str], seen: Any, reachable: bool) -> dict[str, dict[str, Any]]:
    """The configured gateways or chats, with what /healthz says of each."""
    found = seen if isinstance(seen, dict) else {}
    parts = {}
    for name, kind in types.items():
        part = found.get(name)
        part = dict(part) if isinstance(part, dict) else {}
        part.setdefault("state", "unknown" if not reachable else "missing")
        parts[name] = {"type": kind, **part}
    return parts


async def _from_store(config: Config, here: str | None) -> dict[str, Any]:
    store = await open_store(config, read_only=True)
    try:
        queues = await store.report.queues(
            [c.name for c in config.chats], [g.name for g in config.gateways]
        )
        errors = await store.report.problems()
        holders = await store.leases.holders()
    finally:
        await store.close()
    return {
        "store": {"state": "ok"},
        "queues": [
            {"queue": q.queue, "name": q.name, "depth": q.depth, "oldest_seconds": q.oldest}
            for q in queues
        ],
        "errors": [
            {
                "at": iso(p.at),
                "what": p.what,
                "kind": p.kind,
                "name": p.name,
                "id": p.id,
                "state": p.state,
                "attempts": p.attempts,
                "error": p.error,
            }
            for p in errors
        ],
        "duties": [
            {
                "duty": h.name,
                "holder": h.holder,
                "seconds_left": round(h.left, 1),
                "here": h.holder == here,
            }
            for h in holders
        ],
    }


def watchdog(value: Any) -> str:
    """A one-line summary of a gateway's watchdog report, whatever its shape."""
    if not isinstance(value, dict):
        return str(value)
    state = value.get("state") or ("ok" if value.get("healthy", True) else "incident")
    incidents = value.get("incidents") or value.get("open")
    if isinstance(incidents, dict):
        incidents = [k for k, v in incidents.items() if v]
    if isinstance(incidents, list) and incidents:
        return f"{state} ({', '.join(map(str, incidents))})"
    return str(state)


def render(report: dict[str, Any]) -> str:
    lines = [f"smsbridge status: {'OK' if report['ok'] else 'DOWN'}"]
    bridge = report["bridge"]
    if bridge["state"] == "unreachable":
        lines.append(f"bridge    {bridge['url'] or '?'}: unreachable ({bridge['error']})")
    else:
        lines.append(
            f"bridge    {bridge['url']}: {bridge['state']} (instance {bridge['instance']}, "
            f"up {span(bridge['uptime'])})"
        )
    store = report["store"]
    shown = store["state"] + (f" ({store['error']})" if store.get("error") else "")
    lines.append(f"store     {store['kind']}: {shown}")
    lines.append("gateways")
    for name, part in report["gateways"].items():
        extra = f"receive by {part['receive']}" if part.get("receive") else part["type"]
        if "watchdog" in part:
            extra += f", watchdog: {watchdog(part['watchdog'])}"
        if part.get("last_error"):
            extra += f", last error: {part['last_error']}"
        lines.append(f"  {name:<20} {part['state']:<10} {extra}")
    lines.append("chats")
    for name, part in report["chats"].items():
        lines.append(f"  {name:<20} {part['state']:<10} {part['type']}")
    if "queues" in report:
        lines.append(f"queues{'':<32}depth  oldest")
        for q in report["queues"]:
            label = QUEUE_LABELS.get(q["queue"], q["queue"])
            lines.append(
                f"  {label:<14} {q['name']:<20} {q['depth']:>5}  {span(q['oldest_seconds'])}"
            )
        lines.append("duties")
        for d in report["duties"] or [{"duty": "(none held)", "holder": "", "seconds_left": 0}]:
            left = d["seconds_left"]
            when = f"{left:g}s left" if left >= 0 else f"expired {-left:g}s ago"
            mine = " (this instance)" if d.get("here") else ""
            lines.append(f"  {d['duty']:<22} {d['holder']}{mine}  {when if d['holder'] else ''}")
        lines.append("last errors" if report["errors"] else "last errors: none")
        for e in report["errors"]:
            what = f"{e['what']} {e['id']}" + (f" ({e['kind']})" if e["kind"] else "")
            lines.append(
                f"  {e['at']}  {what} {e['name']}: {e['state']} after "
                f"{e['attempts']} attempt(s): {e['error']}"
            )
    if report["problems"]:
        lines.append("problems")
        lines.extend(f"  {problem}" for problem in report["problems"])
    return "\n".join(line.rstrip() for line in lines)
