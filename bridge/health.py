"""/healthz: what each part of one instance says, and whether the instance is fit to serve."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bridge.app import Bridge


async def report_health(bridge: Bridge) -> tuple[bool, dict[str, Any]]:
    """Store, scheduler, duties, workers and connectors; not ok when any of them is down.

    A duty another instance owns is "standby", which is healthy: only one instance of a
    deployment polls a gateway or posts into a chat at a time.
    """
    report: dict[str, Any] = {
        "uptime": round(time.time() - bridge.started_at, 1),
        "instance": bridge.instance,
    }
    ok = True
    try:
        assert bridge.store is not None
        await asyncio.wait_for(bridge.store.db.ping(), timeout=5)
        backlog = await asyncio.wait_for(bridge.store.backlog(), timeout=5)
        report["store"] = {"state": "ok", "backlog": backlog}
    except Exception as exc:
        report["store"] = {"state": "down", "error": type(exc).__name__}
        ok = False
    report["scheduler"] = {"state": "ok" if bridge.scheduler.running else "down"}
    ok = ok and bridge.scheduler.running
    report["duties"] = bridge.keeper.state() if bridge.keeper is not None else {}
    workers = {}
    for name, worker in bridge.workers.items():
        up = worker.alive and worker.down is None
        workers[name] = {"state": "ok" if up else "down", "last_error": worker.last_error}
        ok = ok and up
    report["workers"] = workers
    chats = {name: chat.health() for name, chat in bridge.chats.items()}
    report["chats"] = chats
    ok = ok and all(c.get("state") == "ok" for c in chats.values())
    gateways = {p.name: p.health() for p in bridge.pollers}
    for name, watchdog in bridge.watchdogs.items():
        # A store that cannot answer is reported above; the watchdog then shows what it has.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(watchdog.refresh(), timeout=5)
        watched = gateways[name]["watchdog"] = watchdog.health()
        # An incident is news for the ops chat, not a reason to pull this instance out of
        # service; only a gateway API down for down_after makes the gateway "down", and only
        # where its duty runs (like its polls: a standby's polls never fail).
        if watchdog.active and "api_down" in watched["incidents"]:
            gateways[name]["state"] = "down"
    report["gateways"] = gateways
    ok = ok and all(g.get("state") != "down" for g in gateways.values())
    report["status"] = "ok" if ok else "down"
    return ok, report
