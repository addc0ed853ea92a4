"""JSON schemas for structured-output tests: nesting, enums, arrays, numbers, optional fields,
patterns, references. Strings and arrays that a model could extend forever carry a bound, as a
schema for a device app would; objects are closed by the response format itself."""

from __future__ import annotations

from typing import Any

SHORT = {"type": "string", "maxLength": 12}

SCHEMAS: dict[str, dict[str, Any]] = {
    "flat": {
        "type": "object",
        "properties": {"name": SHORT, "count": {"type": "integer"}, "ok": {"type": "boolean"}},
        "required": ["name", "count", "ok"],
    },
    "enum_string": {"enum": ["red", "green", "blue"]},
    "integer_range": {"type": "integer", "minimum": -5, "maximum": 250},
    "number_range": {"type": "number", "minimum": 0, "maximum": 1},
    "exclusive_number": {
        "type": "object",
        "properties": {"t": {"type": "number", "exclusiveMinimum": 0, "maximum": 99}},
        "required": ["t"],
    },
    "boolean": {"type": "boolean"},
    "integer_array": {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 4},
    "nested_object": {
        "type": "object",
        "properties": {
            "user": {
                "type": "object",
                "properties": {"id": {"type": "integer"}, "handle": SHORT},
                "required": ["id", "handle"],
            },
            "active": {"type": "boolean"},
        },
        "required": ["user", "active"],
    },
    "array_of_objects": {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
            "required": ["x", "y"],
        },
        "maxItems": 3,
    },
    "optional_fields": {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": SHORT, "c": {"type": "boolean"}},
        "required": ["a"],
    },
    "nullable": {
        "type": "object",
        "properties": {"note": {"anyOf": [SHORT, {"type": "null"}]}},
        "required": ["note"],
    },
    "const": {
        "type": "object",
        "properties": {"version": {"const": 2}, "kind": {"const": "event"}},
        "required": ["version", "kind"],
    },
    "pattern": {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{2}$"}},
        "required": ["code"],
    },
    "string_lengths": {"type": "string", "minLength": 3, "maxLength": 8},
    "refs": {
        "$defs": {
            "point": {
                "type": "object",
                "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
                "required": ["lat", "lon"],
            }
        },
        "type": "object",
        "properties": {"from": {"$ref": "#/$defs/point"}, "to": {"$ref": "#/$defs/point"}},
        "required": ["from", "to"],
    },
    "matrix": {
        "type": "array",
        "items": {"type": "array", "items": {"type": "integer"}, "maxItems": 3},
        "maxItems": 3,
    },
    "mixed_enum": {"enum": [1, "two", None, True]},
    "tuple": {
        "type": "array",
        "prefixItems": [{"type": "integer"}, SHORT, {"type": "boolean"}],
        "items": False,
    },
    "enum_array": {
        "type": "array",
        "items": {"enum": ["low", "mid", "high"]},
        "minItems": 2,
        "maxItems": 5,
    },
    "three_levels": {
        "type": "object",
        "properties": {
            "robot": {
                "type": "object",
                "properties": {
                    "arm": {
                        "type": "object",
                        "properties": {
                            "joints": {"type": "array", "items": {"type": "number"}, "maxItems": 3},
                            "gripper": {"enum": ["open", "closed"]},
                        },
                        "required": ["joints", "gripper"],
                    }
                },
                "required": ["arm"],
            }
        },
        "required": ["robot"],
    },
    "ros_command": {
        "type": "object",
        "properties": {
            "action": {"enum": ["move", "stop", "turn"]},
            "speed": {"type": "number", "minimum": 0, "maximum": 2},
            "duration_s": {"type": "integer", "minimum": 1, "maximum": 60},
            "target": {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 10}]},
        },
        "required": ["action", "speed", "duration_s", "target"],
    },
    "date": {
        "type": "object",
        "properties": {"day": {"type": "string", "format": "date"}},
        "required": ["day"],
    },
}
