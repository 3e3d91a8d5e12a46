"""The Starlette app: gateway and Telegram webhooks, /healthz and /metrics."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.errors import NotFound, PayloadTooLarge, WebhookRejected
from bridge.logs import REDACTOR
from bridge.metrics import Metrics
from bridge.models import WebhookRequest
from bridge.ports import ChatPlatform, ReceivesChatWebhooks, ReceivesWebhooks, SmsGateway
from bridge.router import Router

log = logging.getLogger(__name__)

Health = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body (signatures cover exact bytes), refused past ``limit`` unread."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _rejected(exc: WebhookRejected) -> JSONResponse:
    return JSONResponse({"error": exc.reason}, status_code=exc.status)


def build_web(
    *,
    gateways: dict[str, SmsGateway],
    webhook_gateways: set[str],
    chats: dict[str, ChatPlatform],
    router: Router,
    metrics: Metrics,
    health: Health,
    max_body: int,
) -> Starlette:
    # Resolved once: a runtime Protocol check per request is measurable at a thousand a second.
    receivers = {
        name: gateway
        for name, gateway in gateways.items()
        if name in webhook_gateways and isinstance(gateway, ReceivesWebhooks)
    }

    async def sms_webhook(request: Request) -> Response:
        name = request.path_params["gateway"]
        token = request.path_params.get("token")
        try:
            gateway = receivers.get(name)
            if gateway is None:
                raise NotFound(f"no webhook for gateway {name!r}")
            body = await read_body(request, max_body)
            events = gateway.parse_webhook(
                WebhookRequest(
                    gateway=name,
                    token=token,
                    headers={k.lower(): v for k, v in request.headers.items()},
                    body=body,
                    received_at=time.time(),
                )
            )
        except WebhookRejected as exc:
            metrics.webhook_rejected.labels("sms", str(exc.status)).inc()
            log.info("webhook for %s refused (%s): %s", name, exc.status, exc.reason)
            return _rejected(exc)
        if events.ignored:
            return JSONResponse({"status": "ignored", "reason": events.ignored})
        try:
            new = await router.accept_webhook(name, events)
        except Exception:
            # Not stored: a 5xx makes the gateway deliver it again later.
            log.exception("webhook for %s could not be stored", name)
            return JSONResponse({"error": "temporarily unable to store; retry"}, status_code=503)
        if new:
            return JSONResponse({"status": "accepted"}, status_code=202)
        return JSONResponse({"status": "duplicate"})

    async def telegram_webhook(request: Request) -> Response:
        name = request.path_params["chat"]
        chat = chats.get(name)
        try:
            if chat is None or not isinstance(chat, ReceivesChatWebhooks):
                raise NotFound(f"no webhook for chat {name!r}")
            body = await read_body(request, max_body)
            await chat.accept_webhook({k.lower(): v for k, v in request.headers.items()}, body)
        except WebhookRejected as exc:
            metrics.webhook_rejected.labels("telegram", str(exc.status)).inc()
            return _rejected(exc)
        except Exception:
            log.exception("telegram update for %s could not be handled", name)
            return JSONResponse({"error": "temporarily unable to handle; retry"}, status_code=503)
        return JSONResponse({"ok": True})

    async def healthz(_request: Request) -> Response:
        ok, report = await health()
        # Error texts come from libraries; mask secrets here as the logs do.
        body = REDACTOR.redact(json.dumps(report))
        return Response(body, status_code=200 if ok else 503, media_type="application/json")

    async def prometheus(_request: Request) -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return Starlette(
        routes=[
            Route("/webhooks/sms/{gateway}", sms_webhook, methods=["POST"]),
            Route("/webhooks/sms/{gateway}/{token}", sms_webhook, methods=["POST"]),
            Route("/webhooks/telegram/{chat}", telegram_webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", prometheus, methods=["GET"]),
        ]
    )
