"""A small OpenAPI 3 schema checker for the SMSGate fake (the subset its swagger.json uses)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


class SpecViolation(ValueError):
    """A document that does not match its schema; the message names the JSON path."""


class Spec:
    """Checks documents against ``components.schemas`` of a loaded OpenAPI document."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.schemas: Mapping[str, Any] = document["components"]["schemas"]

    def check(self, name: str, value: Any, where: str = "$") -> None:
        """Raise ``SpecViolation`` unless ``value`` matches schema ``name``."""
        self._check(self.schemas[name], value, where)

    def _resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        ref = schema.get("$ref")
        if ref is None:
            return schema
        return self._resolve(self.schemas[ref.rsplit("/", 1)[-1]])

    def _check(self, schema: Mapping[str, Any], value: Any, where: str) -> None:
        schema = self._resolve(schema)
        if value is None:
            if schema.get("nullable"):
                return
            if "allOf" not in schema and "type" in schema:
                raise SpecViolation(f"{where}: null is not allowed")
        if "allOf" in schema:
            # swag writes enums as {"allOf": [$ref], "type": "object"}: the $ref decides.
            for part in schema["allOf"]:
                self._check(part, value, where)
            return
        kind = schema.get("type")
        if kind is not None and value is not None:
            ok = isinstance(value, _TYPES[kind]) and not (
                kind in ("integer", "number") and isinstance(value, bool)
            )
            if not ok:
                raise SpecViolation(f"{where}: expected {kind}, got {type(value).__name__}")
        if "enum" in schema and value not in schema["enum"]:
            raise SpecViolation(f"{where}: {value!r} is not one of {schema['enum']}")
        if isinstance(value, str):
            self._string(schema, value, where)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if "minimum" in schema and value < schema["minimum"]:
                raise SpecViolation(f"{where}: below the minimum {schema['minimum']}")
            if "maximum" in schema and value > schema["maximum"]:
                raise SpecViolation(f"{where}: above the maximum {schema['maximum']}")
        elif isinstance(value, list):
            if len(value) < schema.get("minItems", 0):
                raise SpecViolation(f"{where}: fewer than {schema['minItems']} items")
            if "maxItems" in schema and len(value) > schema["maxItems"]:
                raise SpecViolation(f"{where}: more than {schema['maxItems']} items")
            for index, item in enumerate(value):
                self._check(schema.get("items", {}), item, f"{where}[{index}]")
        elif isinstance(value, dict):
            for key in schema.get("required", ()):
                if key not in value:
                    raise SpecViolation(f"{where}: missing required field '{key}'")
            properties = schema.get("properties", {})
            for key, item in value.items():
                if key in properties:
                    self._check(properties[key], item, f"{where}.{key}")

    def _string(self, schema: Mapping[str, Any], value: str, where: str) -> None:
        if len(value) < schema.get("minLength", 0):
            raise SpecViolation(f"{where}: shorter than {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise SpecViolation(f"{where}: longer than {schema['maxLength']} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            raise SpecViolation(f"{where}: does not match {schema['pattern']}")
        if schema.get("format") == "date-time":
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise SpecViolation(f"{where}: not an RFC 3339 date-time") from None
