"""Vendored Slack method and event specs (slack-ruby/slack-api-ref) and argument checks."""

from __future__ import annotations

import functools
import json
import re
from importlib.resources import files
from typing import Any

# Errors any method may answer (Slack's "common errors"); the per-method files list the rest.
COMMON_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "invalid_arguments",
        "invalid_arg_name",
        "invalid_charset",
        "invalid_form_data",
        "invalid_post_type",
        "missing_post_type",
        "request_timeout",
        "ratelimited",
        "fatal_error",
        "internal_error",
        "service_unavailable",
        "not_allowed_token_type",
        "unknown_method",
        "invalid_json",
        "json_not_object",
    }
)
_INT_RE = re.compile(r"-?\d+")
_NUMBER_RE = re.compile(r"-?\d+(\.\d+)?")
_BOOLEANS = frozenset({"true", "false", "1", "0"})


def _load(folder: str, name: str) -> dict[str, Any] | None:
    resource = files("connectors.chat.slack").joinpath("specs", folder, f"{name}.json")
    if not resource.is_file():
        return None
    loaded: dict[str, Any] = json.loads(resource.read_text(encoding="utf-8"))
    return loaded


@functools.cache
def method(name: str) -> dict[str, Any] | None:
    """The spec of a Web API method (``chat.postMessage``), or None if it is not vendored."""
    if not re.fullmatch(r"[A-Za-z]+(\.[A-Za-z]+)+", name):
        return None
    return _load("slack-methods", name)


@functools.cache
def event(name: str) -> dict[str, Any] | None:
    """The spec of an event type (``message``, ``reaction_added``), or None."""
    if not re.fullmatch(r"[a-z_.]+", name):
        return None
    return _load("slack-events", name)


def errors(name: str) -> frozenset[str]:
    """Error codes ``name`` may answer with: its own plus the common ones."""
    spec = method(name)
    own = frozenset(spec.get("errors", {})) if spec else frozenset()
    return own | COMMON_ERRORS


def check_args(name: str, params: dict[str, Any]) -> tuple[list[str], str | None]:
    """(violations, error code Slack would answer or None) for the arguments of a call.

    Arguments arrive as strings from a query or form, or as JSON values from a JSON body.
    """
    spec = method(name)
    if spec is None:
        return [f"unknown method {name!r}"], "unknown_method"
    schema = spec["args"]
    properties: dict[str, Any] = schema.get("properties", {})
    violations: list[str] = []
    error: str | None = None
    for arg, value in params.items():
        prop = properties.get(arg)
        if prop is None:
            violations.append(f"{name}: unknown argument {arg!r}")
            continue
        problem = _type_problem(prop, value)
        if problem:
            violations.append(f"{name}: {arg} {problem}")
            error = error or "invalid_arguments"
    for arg in schema.get("required", []):
        if params.get(arg) in (None, ""):
            violations.append(f"{name}: missing required argument {arg!r}")
            error = error or _missing_error(name, arg)
    return violations, error


def _missing_error(name: str, arg: str) -> str:
    if arg == "token":
        return "not_authed"
    if arg == "channel" and "channel_not_found" in errors(name):
        return "channel_not_found"
    if "missing_argument" in errors(name):
        return "missing_argument"
    return "invalid_arguments"


def _types(prop: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    if "type" in prop:
        kind = prop["type"]
        found.update(kind if isinstance(kind, list) else [kind])
    for option in prop.get("anyOf", []):
        found.update(_types(option))
    return found


def _type_problem(prop: dict[str, Any], value: Any) -> str | None:
    kinds = _types(prop)
    if not kinds or value is None:
        return None
    if isinstance(value, str):
        if "string" in kinds:
            return None
        if "boolean" in kinds and value.lower() in _BOOLEANS:
            return None
        if "integer" in kinds and _INT_RE.fullmatch(value):
            return _bounds(prop, int(value))
        if "number" in kinds and _NUMBER_RE.fullmatch(value):
            return None
        if kinds & {"array", "object"} and _is_json_container(value):
            return None  # a form or query carries arrays as JSON text
        return f"is {value!r}, expected {sorted(kinds)}"
    ok = (
        (isinstance(value, bool) and "boolean" in kinds)
        or (
            isinstance(value, int) and not isinstance(value, bool) and kinds & {"integer", "number"}
        )
        or (isinstance(value, float) and "number" in kinds)
        or (isinstance(value, list | dict) and kinds & {"array", "object"})
    )
    if not ok:
        return f"is {value!r}, expected {sorted(kinds)}"
    return _bounds(prop, value) if isinstance(value, int) else None


def _is_json_container(value: str) -> bool:
    try:
        return isinstance(json.loads(value), list | dict)
    except ValueError:
        return False


def _bounds(prop: dict[str, Any], value: int) -> str | None:
    if "minimum" in prop and value < prop["minimum"]:
        return f"is {value}, below the minimum {prop['minimum']}"
    if "maximum" in prop and value > prop["maximum"]:
        return f"is {value}, above the maximum {prop['maximum']}"
    return None
