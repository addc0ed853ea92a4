"""A request body, read and checked before any field is: size, read deadline, JSON, text.

What a route gets from :func:`read_json` is JSON that the rest of the server can handle: at most
``max_bytes`` long, nested at most :data:`MAX_DEPTH` levels, every string (keys included) valid
Unicode text. A lone UTF-16 surrogate (``"\\udcff"``, valid JSON but not text) or a body nested
100,000 levels deep is a 400 naming the field, not a 500 further in. A body that does not arrive
within ``timeout_s`` (a client that stalls after its headers) is a 408 that closes the connection,
and a client that leaves before sending its body is one log line, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import numpy as np
from starlette.requests import ClientDisconnect, Request

from edge_sdk.serve.errors import APIError, invalid

__all__ = ["MAX_DEPTH", "read_json"]

LOG = logging.getLogger("edge_sdk.serve")
MAX_DEPTH = 64  # OpenAI bodies nest 5 levels; template kwargs leave room, Python's stack does not
CLIENT_CLOSED = 499  # the status logged for a client that left before its answer (nginx's)

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_OPEN = np.frombuffer(b"[{", np.uint8)
_CLOSE = np.frombuffer(b"]}", np.uint8)


async def read_json(request: Request, max_bytes: int, timeout_s: float) -> Any:
    """The request's JSON body, checked (:class:`APIError` otherwise)."""
    raw = await _read(request, max_bytes, timeout_s)
    try:
        body = json.loads(raw)
    except RecursionError:
        field = _deep_field(raw, MAX_DEPTH)
        raise _too_deep(field) from None
    except ValueError as exc:
        raise APIError(
            400, f"the request body is not valid JSON: {exc}", code="invalid_json"
        ) from exc
    _check_text_and_depth(body)
    return body


async def _read(request: Request, max_bytes: int, timeout_s: float) -> bytes:
    chunks: list[bytes] = []

    async def receive_all() -> None:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise APIError(
                    413,
                    f"the request body is larger than {max_bytes} bytes",
                    code="request_too_large",
                )
            chunks.append(chunk)

    client = f"{request.client.host}:{request.client.port}" if request.client else "a client"
    try:
        await asyncio.wait_for(receive_all(), timeout_s)
    except asyncio.TimeoutError:
        LOG.warning(
            "dropped a request from %s: its body did not arrive within %g s (%d bytes came)",
            client,
            timeout_s,
            sum(map(len, chunks)),
        )
        raise APIError(
            408,
            f"the request body did not arrive within {timeout_s:g} s",
            code="request_timeout",
            headers={"Connection": "close"},
        ) from None
    except ClientDisconnect:
        LOG.warning(
            "dropped a request from %s: the client left before sending its body (%d bytes came)",
            client,
            sum(map(len, chunks)),
        )
        raise APIError(
            CLIENT_CLOSED, "the client closed the connection", code="client_closed"
        ) from None
    return b"".join(chunks)


def _too_deep(field: str | None) -> APIError:
    where = f"'{field}'" if field else "the request body"
    return invalid(
        field,
        f"{where} nests arrays or objects more than {MAX_DEPTH} levels deep",
        "invalid_value",
    )


def _check_text_and_depth(body: Any) -> None:
    """Every string valid text, nesting at most MAX_DEPTH (iterative: a deep body is the point)."""
    stack: list[tuple[Any, str, int]] = [(body, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            if not value.isascii() and not _is_text(value):
                raise _not_text(path or "body")
            continue
        if not isinstance(value, (dict, list)):
            continue
        if depth >= MAX_DEPTH:
            raise _too_deep(_top_field(path))
        if isinstance(value, dict):
            for key, item in value.items():
                where = f"{path}.{key}" if path else key
                if not _is_text(key):
                    raise _not_text(path or "body", key=True)
                stack.append((item, where, depth + 1))
        else:
            for index, item in enumerate(value):
                if isinstance(item, (str, dict, list)):
                    stack.append((item, f"{path}[{index}]", depth + 1))


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _not_text(path: str, key: bool = False) -> APIError:
    what = f"a key in '{path}'" if key else f"'{path}'"
    return invalid(
        path,
        f"{what} is not valid text: it holds a lone UTF-16 surrogate (e.g. \\udcff), "
        "which no encoding can carry; send UTF-8 text",
        "invalid_value",
    )


def _top_field(path: str) -> str | None:
    return re.split(r"[.\[]", path, maxsplit=1)[0] or None


def _deep_field(raw: bytes, limit: int) -> str | None:
    """The top-level key under which ``raw`` first nests deeper than ``limit`` (None: none found).

    Strings are blanked (same length) so brackets inside them do not count; depth is a running
    sum over the bytes, so a body too deep for Python's parser is measured without recursion.
    """
    blank = _STRING.sub(lambda m: b'"' + b"_" * (len(m[0]) - 2) + b'"', raw)
    codes = np.frombuffer(blank, np.uint8)
    depth = np.cumsum(np.isin(codes, _OPEN).astype(np.int64) - np.isin(codes, _CLOSE))
    deep = np.flatnonzero(depth > limit)
    if not deep.size or not blank.lstrip().startswith(b"{"):
        return None
    head = slice(0, int(deep[0]))
    colons = np.flatnonzero((codes[head] == ord(":")) & (depth[head] == 1))
    if not colons.size:
        return None
    close = len(blank[: int(colons[-1])].rstrip()) - 1  # the key's closing quote
    start = blank.rfind(b'"', 0, close)
    if close < 0 or start < 0 or blank[close : close + 1] != b'"':
        return None
    try:
        key = json.loads(raw[start : close + 1])
    except ValueError:
        return None
    return key if isinstance(key, str) and _is_text(key) else None
