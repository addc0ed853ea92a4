"""Reading one manifest object: typed getters that name the field in their error (stdlib only)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from edge_sdk.errors import BundleError

__all__ = ["Fields", "emit", "invalid"]

T = TypeVar("T")
_FIX = "export the bundle again with edge-export (or repair manifest.json)"


def invalid(where: str, what: str) -> BundleError:
    """The error for a field ``where`` (dotted path) that is not ``what``."""
    return BundleError(f"manifest.json: {where} {what}; {_FIX}")


class Fields:
    """The keys of one JSON object at ``where`` (a dotted path such as ``graph.kv_cache``)."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, dict):
            raise invalid(where, "must be an object")
        self.data: dict[str, Any] = data
        self.where = where
        self.used: set[str] = set()

    def path(self, key: str) -> str:
        """The dotted path of ``key``."""
        return f"{self.where}.{key}" if self.where else key

    def _get(self, key: str, required: bool) -> Any:
        self.used.add(key)
        if key not in self.data:
            if required:
                raise invalid(self.path(key), "is missing")
            return None
        return self.data[key]

    def raw(self, key: str, required: bool = True) -> Any:
        """The value as stored (the caller checks it)."""
        return self._get(key, required)

    def text(self, key: str) -> str:
        value = self._get(key, True)
        if not isinstance(value, str):
            raise invalid(self.path(key), "must be a string")
        return value

    def opt_text(self, key: str) -> str | None:
        value = self._get(key, False)
        if value is not None and not isinstance(value, str):
            raise invalid(self.path(key), "must be a string or null")
        return value

    def integer(self, key: str) -> int:
        value = self._get(key, True)
        if not isinstance(value, int) or isinstance(value, bool):
            raise invalid(self.path(key), "must be an integer")
        return value

    def opt_integer(self, key: str) -> int | None:
        value = self._get(key, False)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise invalid(self.path(key), "must be an integer or null")
        return value

    def opt_float(self, key: str) -> float | None:
        value = self._get(key, False)
        if value is None:
            return None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise invalid(self.path(key), "must be a number or null")
        return value

    def opt_bool(self, key: str) -> bool | None:
        value = self._get(key, False)
        if value is not None and not isinstance(value, bool):
            raise invalid(self.path(key), "must be true, false or null")
        return value

    def mapping(self, key: str) -> dict[str, Any]:
        value = self._get(key, True)
        if not isinstance(value, dict):
            raise invalid(self.path(key), "must be an object")
        return value

    def opt_mapping(self, key: str) -> dict[str, Any] | None:
        value = self._get(key, False)
        if value is not None and not isinstance(value, dict):
            raise invalid(self.path(key), "must be an object or null")
        return value

    def strings(self, key: str) -> tuple[str, ...] | None:
        """An optional list of strings."""
        value = self._get(key, False)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise invalid(self.path(key), "must be a list of strings")
        return tuple(value)

    def obj(self, key: str, parse: Callable[[object, str], T]) -> T:
        """A nested object, parsed by ``parse(data, where)``."""
        return parse(self._get(key, True), self.path(key))

    def opt_obj(self, key: str, parse: Callable[[object, str], T]) -> T | None:
        value = self._get(key, False)
        return None if value is None else parse(value, self.path(key))

    def objects(self, key: str, parse: Callable[[object, str], T]) -> tuple[T, ...] | None:
        """An optional list of objects, each parsed by ``parse(data, where)``."""
        value = self._get(key, False)
        if value is None:
            return None
        if not isinstance(value, list):
            raise invalid(self.path(key), "must be a list")
        return tuple(parse(item, f"{self.path(key)}[{i}]") for i, item in enumerate(value))

    @staticmethod
    def object_of(data: object, where: str) -> dict[str, Any]:
        """``data`` when it is a JSON object (a parser for :meth:`objects`)."""
        return Fields(data, where).data

    def present(self) -> frozenset[str]:
        """The known keys this object has (so that ``to_dict`` writes back exactly those)."""
        return frozenset(k for k in self.used if k in self.data)

    def extra(self) -> dict[str, Any]:
        """The keys no getter asked for, kept as they are."""
        return {k: v for k, v in self.data.items() if k not in self.used}


def emit(
    values: Iterable[tuple[str, object]], present: frozenset[str], extra: Mapping[str, object]
) -> dict[str, object]:
    """A record's JSON form: known keys that are set or were present when read, then ``extra``."""
    out: dict[str, object] = {k: v for k, v in values if v is not None or k in present}
    out.update(extra)
    return out
