"""The bridge's own HTTP surface as an OpenAPI 3.1 document, assembled from what it serves.

Connectors describe their webhooks (``WebhookDoc``, usually next to their parser); this module
only assembles them with the core's endpoints and the answers ``bridge/web.py`` gives. The small
schema helpers below keep the connectors' fragments short. No secret ever goes into it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bridge.models import WebhookDoc

Schema = dict[str, Any]

# -- helpers for the connectors' fragments ------------------------------------------------------

TEXT: Schema = {"type": "string"}
# Vendors send ids and codes as numbers or as numeric strings, and the parsers take both.
ID: Schema = {"type": ["string", "integer"]}
NUMBER: Schema = {"type": "integer"}
UNIX: Schema = {"type": ["integer", "number", "string"], "description": "unix seconds"}
DATE: Schema = {"type": "string", "description": "a date-time as the vendor writes it"}


def obj(required: Mapping[str, Schema], optional: Mapping[str, Schema] | None = None) -> Schema:
    """A JSON object with these fields; vendors add fields, so others are allowed."""
    schema: Schema = {"type": "object", "properties": {**required, **(optional or {})}}
    if required:
        schema["required"] = sorted(required)
    return schema


def one_or_many(item: Schema) -> Schema:
    """Some vendors batch their events in an array."""
    return {"oneOf": [item, {"type": "array", "items": item, "minItems": 1}]}


def header_scheme(header: str, description: str) -> Schema:
    """A header the sender computes (a signature, a timestamp, a shared secret)."""
    return {"type": "apiKey", "in": "header", "name": header, "description": description}


# -- the document ----------------------------------------------------------------------------

ERROR: Schema = obj({"error": {"type": "string", "description": "why the request was refused"}})
_JSON = "application/json"
_REFUSED = {
    "description": "Refused (malformed, unauthenticated, unknown, too large); never stored",
    "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_RETRY = {
    "description": "Not stored this time; the sender should deliver it again",
    "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_STATUS = obj(
    {"status": {"enum": ["accepted", "duplicate", "ignored"]}},
    {"reason": {"type": "string", "description": "why an ignored event is not bridged"}},
)
_TOKEN = {
    "name": "token",
    "in": "path",
    "required": True,
    "description": "The gateway's secret webhook_token: for senders that sign nothing, the "
    "credential itself (a wrong one is 403)",
    "schema": {"type": "string"},
}


def _json(schema: Schema, description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def _answers(doc: WebhookDoc) -> dict[str, Any]:
    if doc.answer:
        content = {media: {"schema": schema} for media, schema in doc.answer.items()}
        ok = {"description": "Taken (stored, a duplicate, or not for us)", "content": content}
        return {"200": ok, "4XX": _REFUSED, "503": _RETRY}
    return {
        "200": _json(_STATUS, "A duplicate, or valid but not for us (ignored)"),
        "202": _json(_STATUS, "Stored; the SMS or status will be bridged"),
        "4XX": _REFUSED,
        "503": _RETRY,
    }


def _operation(op_id: str, doc: WebhookDoc, method: str, tag: str) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": op_id,
        "summary": doc.summary,
        "tags": [tag],
        "parameters": ([_TOKEN] if doc.token else []) + list(doc.parameters),
        # An empty requirement list says "no scheme": the URL token (or nothing) guards it.
        "security": [{scheme: [] for scheme in doc.security}] if doc.security else [],
        "responses": _answers(doc),
    }
    if method != "GET" and doc.bodies:
        content = {media: {"schema": schema} for media, schema in doc.bodies.items()}
        operation["requestBody"] = {"required": True, "content": content}
    return operation


def build_openapi(
    gateways: Mapping[str, tuple[str, Sequence[WebhookDoc]]],
    chats: Mapping[str, tuple[str, WebhookDoc]],
    version: str,
    *,
    media: bool = False,
) -> dict[str, Any]:
    """``gateways``: name -> (type, its webhooks); ``chats``: name -> (type, its webhook);
    ``media``: /media/<token> is served (files of outbound MMS)."""
    paths: dict[str, dict[str, Any]] = {}
    schemes: dict[str, Mapping[str, Any]] = {}
    for name, (kind, docs) in sorted(gateways.items()):
        for doc in docs:
            path = f"/webhooks/sms/{name}" + ("/{token}" if doc.token else "")
            for method in doc.methods:
                op_id = f"{method.lower()}_sms_{name}" + ("_token" if doc.token else "")
                paths.setdefault(path, {})[method.lower()] = _operation(op_id, doc, method, kind)
            schemes.update(doc.security)
    for name, (kind, doc) in sorted(chats.items()):
        paths[f"/webhooks/{kind}/{name}"] = {
            "post": _operation(f"post_{kind}_{name}", doc, "POST", kind)
        }
        schemes.update(doc.security)
    paths.update(_core_paths())
    if media:
        paths["/media/{token}"] = _media_path()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "smsbridge",
            "version": version,
            "description": "The endpoints this bridge serves with its current config. Every "
            'refusal (4xx) carries {"error": "..."}.',
        },
        "paths": paths,
        "components": {"schemas": {"Error": ERROR}, "securitySchemes": schemes},
    }


def _core(op_id: str, summary: str, responses: dict[str, Any]) -> dict[str, Any]:
    operation = {"operationId": op_id, "summary": summary, "tags": ["core"], "security": []}
    return {"get": operation | {"responses": responses}}


def _core_paths() -> dict[str, Any]:
    parts = ("store", "scheduler", "workers", "chats", "gateways")
    health = obj(
        {"status": {"enum": ["ok", "down"]}, "uptime": {"type": "number"}},
        {part: {"type": "object"} for part in parts},
    )
    metrics = {"text/plain": {"schema": {"type": "string"}}}
    return {
        "/healthz": _core(
            "healthz",
            "Whether every part of the bridge is up",
            {"200": _json(health, "Up"), "503": _json(health, "Something is down")},
        ),
        "/metrics": _core(
            "metrics",
            "Prometheus metrics",
            {"200": {"description": "The metrics", "content": metrics}},
        ),
        "/openapi.json": _core(
            "openapi", "This document", {"200": _json({"type": "object"}, "OpenAPI 3.1")}
        ),
    }


def _media_path() -> dict[str, Any]:
    token = {
        "name": "token",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{20,64}$"},
        "description": "the random token of one file; it expires 24 h after it was stored",
    }
    found = {"*/*": {"schema": {"type": "string", "format": "binary"}}}
    operation = _core(
        "media",
        "A file sent with an outbound MMS, for the gateway to fetch",
        {
            "200": {"description": "The file, with its content type", "content": found},
            "404": _json({"$ref": "#/components/schemas/Error"}, "Unknown or expired"),
        },
    )
    operation["get"]["parameters"] = [token]
    return operation
