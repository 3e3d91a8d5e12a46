"""The Starlette app: gateway and chat webhooks, /healthz, /metrics and /openapi.json."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Container
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.errors import NotFound, PayloadTooLarge, WebhookRejected
from bridge.logs import REDACTOR
from bridge.metrics import Metrics
from bridge.models import WebhookAnswer, WebhookDoc, WebhookRequest
from bridge.openapi import build_openapi
from bridge.ports import (
    AnswersWebhooks,
    ChatPlatform,
    ReceivesChatWebhooks,
    ReceivesWebhooks,
    SmsGateway,
)
from bridge.router import Router
from bridge.store.media import Media

log = logging.getLogger(__name__)

Health = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")  # secrets.token_urlsafe's alphabet
_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body (signatures cover exact bytes), refused past ``limit`` unread."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdecimal() and int(declared) > limit:
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


async def _http_error(_request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (unknown path, wrong method) in our error shape."""
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _crashed(_request: Request, _exc: Exception) -> Response:
    # A bug, logged by the server; the sender gets our error shape and retries later.
    return JSONResponse({"error": "internal error; retry"}, status_code=500)


class _Unstored:
    """Webhooks answered 503 in a row because they could not be stored.

    The first of a run is logged with its traceback, the rest only counted (and in /metrics)
    until one is stored again: a database outage under load would otherwise write a
    hundred-line traceback per request (measured: 22,000 log lines per instance in 3 s).
    """

    def __init__(self) -> None:
        self.refused = 0

    def failed(self, what: str) -> None:
        if self.refused == 0:
            log.exception("%s; answering 503 until webhooks are handled again", what)
        self.refused += 1

    def stored(self) -> None:
        if self.refused:
            log.warning("webhooks handled again, after %d answered 503", self.refused)
            self.refused = 0


def known(name: str, names: Container[str]) -> str:
    """A name from the URL as a label value: anyone can call any URL, and a series per
    made-up name would fill Prometheus."""
    return name if name in names else "unknown"


def _answer(answer: WebhookAnswer) -> Response:
    return Response(answer.body, status_code=answer.status, media_type=answer.media_type)


def download_name(name: str | None) -> str:
    """A file name as Twilio asks for in Content-Disposition (the handset shows it): letters,
    digits and ``._-`` only, at most 20 characters, the extension kept."""
    stem, dot, extension = _FILENAME.sub("_", name or "file").rpartition(".")
    if not dot:
        stem, extension = extension, ""
    extension = extension[:5]
    room = 20 - (len(extension) + 1 if extension else 0)
    return (stem[:room] or "file") + (f".{extension}" if extension else "")


def called_url(request: Request, public_url: str | None) -> str:
    """The URL the sender called: behind a proxy only ``public_url`` knows its real start."""
    if public_url is None:
        return str(request.url)
    query = request.url.query
    return f"{public_url.rstrip('/')}{request.url.path}{'?' + query if query else ''}"


def build_web(
    *,
    gateways: dict[str, SmsGateway],
    webhook_gateways: set[str],
    gateway_types: dict[str, str],
    chats: dict[str, ChatPlatform],
    chat_types: dict[str, str],
    router: Router,
    metrics: Metrics,
    health: Health,
    max_body: int,
    public_url: str | None = None,
    media: Media | None = None,
    version: str,
) -> Starlette:
    """``media``: serve the files of outbound MMS at /media/<token> (with ``public_url`` only:
    no file can be queued without it)."""
    # Resolved once: a runtime Protocol check per request is measurable at a thousand a second.
    receivers = {
        name: gateway
        for name, gateway in gateways.items()
        if name in webhook_gateways and isinstance(gateway, ReceivesWebhooks)
    }
    answers = {
        name: gateway.webhook_answer
        for name, gateway in receivers.items()
        if isinstance(gateway, AnswersWebhooks)
    }
    docs = {name: tuple(gateway.webhook_docs()) for name, gateway in receivers.items()}
    unstored = _Unstored()
    chat_kinds = set(chat_types.values())
    # The methods each documented endpoint takes; others are refused before the parser runs.
    methods: dict[tuple[str, bool], set[str]] = {}  # (gateway, under its token?) -> methods
    for name, found in docs.items():
        for endpoint in found:
            methods.setdefault((name, endpoint.token), set()).update(endpoint.methods)
    chat_docs: dict[str, tuple[str, WebhookDoc]] = {}
    for name, chat in chats.items():
        doc = chat.webhook_doc() if isinstance(chat, ReceivesChatWebhooks) else None
        if doc is not None:
            chat_docs[name] = (chat_types[name], doc)
    serves_media = media is not None and public_url is not None
    document = build_openapi(
        {name: (gateway_types[name], found) for name, found in docs.items()},
        chat_docs,
        version,
        media=serves_media,
    )

    async def sms_webhook(request: Request) -> Response:
        name = request.path_params["gateway"]
        token = request.path_params.get("token")
        try:
            gateway = receivers.get(name)
            if gateway is None:
                raise NotFound(f"no webhook for gateway {name!r}")
            allowed = methods.get((name, token is not None))
            if allowed is not None and request.method not in allowed:
                raise HTTPException(405, headers={"Allow": ", ".join(sorted(allowed))})
            body = await read_body(request, max_body)
            events = gateway.parse_webhook(
                WebhookRequest(
                    gateway=name,
                    token=token,
                    headers={k.lower(): v for k, v in request.headers.items()},
                    body=body,
                    received_at=time.time(),
                    url=called_url(request, public_url),
                    method=request.method,
                    query=dict(request.query_params),
                )
            )
        except WebhookRejected as exc:
            metrics.webhook_rejected.labels("sms", str(exc.status)).inc()
            metrics.error("webhook", known(name, receivers), exc)
            log.info(
                "webhook for %s refused (%s): %s",
                name,
                exc.status,
                exc.reason,
                extra={"gateway": name},
            )
            return _rejected(exc)
        answer = answers.get(name)
        if events.ignored:
            if answer is not None:
                return _answer(answer)
            return JSONResponse({"status": "ignored", "reason": events.ignored})
        try:
            new = await router.ingest(name, events) > 0
        except WebhookRejected as exc:
            metrics.webhook_rejected.labels("sms", str(exc.status)).inc()
            metrics.error("webhook", name, exc)
            log.warning(
                "webhook for %s refused (%s): %s",
                name,
                exc.status,
                exc.reason,
                extra={"gateway": name},
            )
            return _rejected(exc)
        except Exception:
            # Not stored: a 5xx makes the gateway deliver it again later.
            metrics.webhook_rejected.labels("sms", "503").inc()
            metrics.errors.labels("webhook", name, "store_failed").inc()
            unstored.failed(f"webhook for {name} could not be stored")
            return JSONResponse({"error": "temporarily unable to store; retry"}, status_code=503)
        unstored.stored()
        if answer is not None:
            return _answer(answer)
        if new:
            return JSONResponse({"status": "accepted"}, status_code=202)
        return JSONResponse({"status": "duplicate"})

    async def chat_webhook(request: Request) -> Response:
        kind = request.path_params["kind"]
        name = request.path_params["chat"]
        chat = chats.get(name)
        try:
            if (
                chat is None
                or chat_types.get(name) != kind
                or not isinstance(chat, ReceivesChatWebhooks)
            ):
                raise NotFound(f"no webhook for chat {name!r}")
            body = await read_body(request, max_body)
            answer = await chat.accept_webhook(
                {k.lower(): v for k, v in request.headers.items()}, body
            )
        except WebhookRejected as exc:
            metrics.webhook_rejected.labels(known(kind, chat_kinds), str(exc.status)).inc()
            metrics.error("webhook", known(name, chats), exc)
            return _rejected(exc)
        except Exception:
            metrics.webhook_rejected.labels(kind, "503").inc()
            metrics.errors.labels("webhook", name, "store_failed").inc()
            unstored.failed(f"{kind} update for {name} could not be handled")
            return JSONResponse({"error": "temporarily unable to handle; retry"}, status_code=503)
        unstored.stored()
        return JSONResponse({"ok": True}) if answer is None else _answer(answer)

    async def healthz(_request: Request) -> Response:
        ok, report = await health()
        # Error texts come from libraries; mask secrets here as the logs do.
        body = REDACTOR.redact(json.dumps(report))
        return Response(body, status_code=200 if ok else 503, media_type="application/json")

    async def prometheus(_request: Request) -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def openapi(_request: Request) -> Response:
        return JSONResponse(document)

    async def media_file(request: Request) -> Response:
        # The token is the file's only guard (gateways fetch without credentials): unknown and
        # expired look the same, and a malformed one never reaches the store.
        token = request.path_params["token"]
        assert media is not None
        found = await media.by_token(token) if _TOKEN.match(token) else None
        if found is None:
            return JSONResponse({"error": "no such file, or it has expired"}, status_code=404)
        headers = {
            "Content-Disposition": f'inline; filename="{download_name(found.name)}"',
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",  # what a person uploaded is never run as a page
        }
        return Response(found.data, media_type=found.content_type, headers=headers)

    return Starlette(
        exception_handlers={HTTPException: _http_error, Exception: _crashed},
        routes=[
            # GET too: some gateways call back with query parameters only.
            Route("/webhooks/sms/{gateway}", sms_webhook, methods=["GET", "POST"]),
            Route("/webhooks/sms/{gateway}/{token}", sms_webhook, methods=["GET", "POST"]),
            Route("/webhooks/{kind}/{chat}", chat_webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", prometheus, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
            # GET answers HEAD too, which Twilio sends to check the content type.
            *([Route("/media/{token}", media_file, methods=["GET"])] if serves_media else []),
        ],
    )
