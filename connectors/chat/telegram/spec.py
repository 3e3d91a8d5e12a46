"""Vendored Bot API spec access and spec-driven decoding/validation of call parameters."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

PRIMITIVES = frozenset({"String", "Integer", "Float", "Boolean", "InputFile", "True"})
_INT_RE = re.compile(r"-?\d+")
_ALWAYS_RE = re.compile(r'always "([^"]+)"')
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]*")
# Required fields whose empty string is meaningful rather than "missing".
_EMPTY_ALLOWED = frozenset({("setWebhook", "url")})
# Dropped from the docs but still honoured by Telegram, on every method with reply_parameters.
_LEGACY_REPLY_FIELDS = {
    "reply_to_message_id": {"types": ["Integer"], "required": False},
    "allow_sending_without_reply": {"types": ["Boolean"], "required": False},
}
# Telegram's own wording for some missing required fields; the rest read "<field> is empty".
_MISSING_TEXT = {
    ("sendMessage", "text"): "message text is empty",
    ("editMessageText", "text"): "message text is empty",
}


class ApiError(Exception):
    """An answer with ``ok: false``."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": False, "error_code": self.status}
        out["description"] = self.description
        if self.retry_after is not None:
            out["parameters"] = {"retry_after": self.retry_after}
        return out


@dataclass(frozen=True)
class Upload:
    """A file part of a multipart request."""

    filename: str
    content_type: str
    data: bytes = field(repr=False)


@dataclass
class Decoded:
    """Parameters decoded according to the spec, plus what was wrong with them."""

    method: str
    params: dict[str, Any]
    violations: list[str] = field(default_factory=list)
    error: str | None = None  # description of the 400 answer, when the call must be refused


@functools.cache
def spec() -> dict[str, Any]:
    """The parsed api.json (loaded once; it is large)."""
    resource = files("connectors.chat.telegram").joinpath("specs", "telegram-bot-api.json")
    loaded: dict[str, Any] = json.loads(resource.read_text(encoding="utf-8"))
    return loaded


@functools.cache
def _method_names() -> dict[str, str]:
    return {name.lower(): name for name in spec()["methods"]}


def canonical_method(name: str) -> str | None:
    """Spec spelling of ``name`` (Telegram matches method names case-insensitively)."""
    return _method_names().get(name.lower())


@functools.cache
def method_fields(method: str) -> dict[str, dict[str, Any]]:
    """Field definitions of a method, by name (shared; do not mutate)."""
    fields: list[dict[str, Any]] = spec()["methods"][method].get("fields", [])
    return {f["name"]: f for f in fields}


@functools.cache
def update_kinds() -> frozenset[str]:
    """Names of the optional payload fields of Update (message, edited_message, ...)."""
    fields: list[dict[str, Any]] = spec()["types"]["Update"]["fields"]
    return frozenset(f["name"] for f in fields if f["name"] != "update_id")


def default_update_kinds() -> frozenset[str]:
    """What Telegram delivers when allowed_updates is empty or was never set."""
    return update_kinds() - {"chat_member", "message_reaction", "message_reaction_count"}


@functools.cache
def reaction_emoji() -> frozenset[str]:
    """Emoji a ReactionTypeEmoji may carry, parsed from the spec's prose."""
    fields: list[dict[str, Any]] = spec()["types"]["ReactionTypeEmoji"]["fields"]
    description = next(f["description"] for f in fields if f["name"] == "emoji")
    return frozenset(re.findall(r'"([^"]+)"', description))


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def decode_params(method: str, raw: Mapping[str, str | Upload]) -> Decoded:
    """Decode string/upload values by their spec types and check required/unknown fields."""
    fields = method_fields(method)
    out = Decoded(method, {})
    for name, value in raw.items():
        spec_field = fields.get(name)
        if spec_field is None and "reply_parameters" in fields:
            spec_field = _LEGACY_REPLY_FIELDS.get(name)
        if spec_field is None:
            out.violations.append(f"{method}: unknown field {name!r}")
            out.params[name] = value
            continue
        decoded, problem, fatal = _decode_value(name, spec_field["types"], value)
        out.params[name] = decoded
        if problem:
            out.violations.append(f"{method}: {problem}")
            if fatal and out.error is None:
                out.error = f"Bad Request: {fatal}"
    for name, spec_field in fields.items():
        if not spec_field["required"]:
            continue
        given = out.params.get(name)
        if given is None or (given == "" and (method, name) not in _EMPTY_ALLOWED):
            out.violations.append(f"{method}: missing required field {name!r}")
            if out.error is None:
                out.error = f"Bad Request: {_MISSING_TEXT.get((method, name), f'{name} is empty')}"
    if out.error is None and (broken := _break_rule(method, out.params)):
        out.violations.append(f"{method}: {broken[0]}")
        out.error = f"Bad Request: {broken[1]}"
    return out


@functools.cache
def icon_colors() -> tuple[int, ...]:
    """Topic icon colours createForumTopic accepts, parsed from the spec's prose."""
    description = method_fields("createForumTopic")["icon_color"]["description"]
    return tuple(int(n) for n in re.findall(r"\b(\d{6,8})\b", description))


@functools.cache
def chat_actions() -> frozenset[str]:
    """Actions sendChatAction accepts, parsed from the spec's prose."""
    description = method_fields("sendChatAction")["action"]["description"]
    return frozenset(re.findall(r"\b(typing|[a-z]+_[a-z_]+)\b", description))


def _break_rule(method: str, p: dict[str, Any]) -> tuple[str, str] | None:
    """Rules the spec states only in prose: (violation, description) of the first one broken."""
    if method == "editMessageText" and not p.get("inline_message_id"):
        for field_name in ("chat_id", "message_id", "text"):
            if p.get(field_name) in (None, ""):
                what = "message text" if field_name == "text" else field_name
                return f"missing {field_name!r}", f"{what} is empty"
    text, caption, name = p.get("text"), p.get("caption"), p.get("name")
    if method in ("sendMessage", "editMessageText") and isinstance(text, str):
        if not text.strip():
            return "text is blank", "message text is empty"
        if utf16_len(text) > 4096:
            return f"text is {utf16_len(text)} UTF-16 units (max 4096)", "message is too long"
    if isinstance(caption, str) and (units := utf16_len(caption)) > 1024:
        return f"caption is {units} UTF-16 units (max 1024)", "message caption is too long"
    topic_method = method in ("createForumTopic", "editForumTopic")
    if topic_method and isinstance(name, str) and utf16_len(name) > 128:
        return "topic name longer than 128 characters", "TOPIC_TITLE_INVALID"
    if method == "createForumTopic" and p.get("icon_color") not in (None, *icon_colors()):
        return f"icon_color {p['icon_color']} is not an allowed colour", "TOPIC_COLOR_INVALID"
    if method == "sendChatAction" and p.get("action") not in chat_actions():
        return f"unknown action {p.get('action')!r}", "wrong parameter action in request"
    secret = p.get("secret_token") if method == "setWebhook" else None
    if isinstance(secret, str) and not _SECRET_RE.fullmatch(secret):
        return "secret_token allows only A-Za-z0-9_-", "secret token contains unallowed characters"
    if isinstance(secret, str) and len(secret) > 256:
        return "secret_token longer than 256 characters", "secret token is too long"
    if method == "setMessageReaction":
        return _break_reaction_rule(p.get("reaction"))
    return None


def _break_reaction_rule(reactions: Any) -> tuple[str, str] | None:
    if reactions is None:
        return None
    if not isinstance(reactions, list):
        return "reaction is not an array", "can't parse reaction types JSON object"
    for reaction in reactions:
        emoji = reaction.get("emoji") if isinstance(reaction, dict) else None
        if emoji not in reaction_emoji():
            return f"reaction {reaction!r} is not an allowed emoji", "REACTION_INVALID"
    if len(reactions) > 1:
        return "bots may set at most one reaction per message", "REACTIONS_TOO_MANY"
    return None


def _decode_value(name: str, types: list[str], value: str | Upload) -> tuple[Any, str, str]:
    """Return (decoded value, violation or "", 400 description or "")."""
    if isinstance(value, Upload):
        if "InputFile" in types:
            return value, "", ""
        return value, f"{name}: file upload where {types} expected", f"can't parse {name}"
    if not set(types) <= PRIMITIVES:
        try:
            decoded = json.loads(value)
        except ValueError:
            if "String" in types:
                return value, "", ""
            return value, f"{name}: not valid JSON", f"can't parse {name} JSON object"
        problems = check_value(types, decoded, name)
        return decoded, "; ".join(problems), ""
    if "Integer" in types and _INT_RE.fullmatch(value):
        return int(value), "", ""
    if "String" in types or "InputFile" in types:
        return value, "", ""
    not_a_number = f'field "{name}" must be a valid Number'
    if "Integer" in types:
        return value, f"{name}: {value!r} is not an Integer", not_a_number
    if "Float" in types:
        try:
            return float(value), "", ""
        except ValueError:
            return value, f"{name}: {value!r} is not a Float", not_a_number
    # Telegram reads any Boolean it does not recognise as false rather than refusing the call.
    lowered = value.lower()
    if lowered in ("true", "1"):
        return True, "", ""
    if lowered in ("false", "0"):
        return False, "", ""
    return False, f"{name}: {value!r} is not a Boolean", ""


def check_value(types: list[str], value: Any, path: str) -> list[str]:
    """Problems of a decoded JSON value against any of the given type expressions."""
    best: list[str] | None = None
    for texpr in types:
        problems = _check_one(texpr, value, path)
        if not problems:
            return []
        if best is None or len(problems) < len(best):
            best = problems
    return best or []


def check_object(type_name: str, value: Any) -> list[str]:
    """Problems of ``value`` as an instance of the spec type ``type_name`` (for self-checks)."""
    return _check_one(type_name, value, type_name)


def _check_one(texpr: str, value: Any, path: str) -> list[str]:
    if texpr.startswith("Array of "):
        if not isinstance(value, list):
            return [f"{path}: expected {texpr}"]
        inner = texpr.removeprefix("Array of ")
        return [p for i, item in enumerate(value) for p in _check_one(inner, item, f"{path}[{i}]")]
    if texpr in PRIMITIVES:
        return [] if _primitive_ok(texpr, value) else [f"{path}: expected {texpr}, got {value!r}"]
    type_def: dict[str, Any] | None = spec()["types"].get(texpr)
    if type_def is None:
        return []  # a type the spec only names in prose; nothing to check against
    if type_def.get("subtypes"):
        return check_value(type_def["subtypes"], value, path)
    if not isinstance(value, dict):
        return [f"{path}: expected {texpr} object"]
    fields = {f["name"]: f for f in type_def.get("fields", [])}
    problems = [
        f"{path}.{name}: missing required field of {texpr}"
        for name, f in fields.items()
        if f["required"] and name not in value
    ]
    for name, item in value.items():
        spec_field = fields.get(name)
        if spec_field is None:
            problems.append(f"{path}.{name}: unknown field of {texpr}")
            continue
        problems.extend(check_value(spec_field["types"], item, f"{path}.{name}"))
        fixed = _ALWAYS_RE.search(spec_field["description"])
        if fixed and isinstance(item, str) and item != fixed.group(1):
            problems.append(f"{path}.{name}: must be {fixed.group(1)!r} for {texpr}")
    return problems


def _primitive_ok(texpr: str, value: Any) -> bool:
    if texpr == "Integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if texpr == "Float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if texpr == "Boolean":
        return isinstance(value, bool)
    if texpr == "True":
        return value is True
    return isinstance(value, str)


async def read_params(request: Request) -> dict[str, str | Upload]:
    """Query string merged with a form, multipart or JSON body, as Telegram accepts them all."""
    params: dict[str, str | Upload] = dict(request.query_params)
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    kind = content_type.split(";")[0].strip().lower()
    if not body:
        return params
    if kind == "application/json":
        try:
            obj = json.loads(body)
        except ValueError:
            raise ApiError(400, "Bad Request: can't parse JSON object") from None
        if not isinstance(obj, dict):
            raise ApiError(400, "Bad Request: JSON object expected")
        # Telegram flattens a JSON body to the same string arguments a form carries.
        for key, value in obj.items():
            if value is not None:
                params[key] = value if isinstance(value, str) else json.dumps(value)
    elif kind == "multipart/form-data":
        params.update(_parse_multipart(body, content_type))
    else:
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return params


def _parse_multipart(body: bytes, content_type: str) -> dict[str, str | Upload]:
    # The stdlib MIME parser avoids a python-multipart dependency just for a test fake.
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    out: dict[str, str | Upload] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is None:
            out[name] = data.decode("utf-8", "replace")
        else:
            out[name] = Upload(filename, part.get_content_type(), data)
    return out
