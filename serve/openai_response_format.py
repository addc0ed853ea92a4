"""The ``response_format`` field -> a checked :class:`~edge_sdk.runtime.ResponseFormat`.

``{"type": "text"}`` (or no field) asks for nothing; ``{"type": "json_object"}`` for any JSON
object; ``{"type": "json_schema", "json_schema": {"name", "description", "schema", "strict"}}``
for JSON that validates against ``schema``. A bad value is a 400 that names the field
(``response_format.json_schema.schema`` for a schema llguidance cannot compile).
"""

from __future__ import annotations

from typing import Any

from edge_sdk.errors import GenerationError
from edge_sdk.runtime.constraints import ResponseFormat
from edge_sdk.serve.errors import APIError, invalid

__all__ = ["parse_response_format"]

_TYPES = ("text", "json_object", "json_schema")
_JSON_SCHEMA_FIELDS = ("name", "description", "schema", "strict")


def parse_response_format(value: Any) -> ResponseFormat | None:
    """The checked format, or None for plain text (:class:`APIError` 400 otherwise)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(
            "response_format",
            f'\'response_format\' must be an object such as {{"type": "json_object"}}, '
            f"got {value!r:.80}",
            "invalid_type",
        )
    kind = value.get("type")
    if kind not in _TYPES:
        raise invalid(
            "response_format.type",
            f"'response_format.type' must be one of {', '.join(_TYPES)}, got {kind!r:.80}",
        )
    allowed = {"type", "json_schema"} if kind == "json_schema" else {"type"}
    extra = sorted(set(value) - allowed)
    if extra:
        raise invalid(
            f"response_format.{extra[0]}",
            f"unknown field 'response_format.{extra[0]}' for type {kind!r}",
            "unknown_parameter",
        )
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat.json_object()
    return _json_schema(value.get("json_schema"))


def _json_schema(spec: Any) -> ResponseFormat:
    where = "response_format.json_schema"
    if not isinstance(spec, dict):
        raise invalid(
            where,
            f"'{where}' must be an object with the 'schema' (and a 'name'), got {spec!r:.80}",
            "missing_required_parameter" if spec is None else "invalid_type",
        )
    extra = sorted(set(spec) - set(_JSON_SCHEMA_FIELDS))
    if extra:
        raise invalid(
            f"{where}.{extra[0]}",
            f"unknown field '{where}.{extra[0]}' (known: {', '.join(_JSON_SCHEMA_FIELDS)})",
            "unknown_parameter",
        )
    for name in ("name", "description"):
        if spec.get(name) is not None and not isinstance(spec[name], str):
            raise invalid(f"{where}.{name}", f"'{where}.{name}' must be a string", "invalid_type")
    strict = spec.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise invalid(f"{where}.strict", f"'{where}.strict' must be true or false", "invalid_type")
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        raise invalid(
            f"{where}.schema",
            f"'{where}.schema' must be a JSON schema object, got {schema!r:.80}",
            "missing_required_parameter" if schema is None else "invalid_type",
        )
    try:
        return ResponseFormat.json_schema(schema, strict=strict is not False)
    except GenerationError as exc:
        raise APIError(
            400,
            f"'{where}.schema': {exc}"
            + (
                "; or send strict: false to ignore the keywords that cannot be enforced"
                if strict is not False and ("Unimplemented" in str(exc) or "oneOf" in str(exc))
                else ""
            ),
            param=f"{where}.schema",
            code="invalid_value",
        ) from exc
