"""Errors in the OpenAI shape: ``{"error": {"message", "type", "param", "code"}}``.

Every failure the server answers, including unknown routes and unexpected exceptions, has this
body, so an OpenAI client raises its usual exception (``BadRequestError``, ``RateLimitError``...)
with the message. Unexpected exceptions are logged server-side with their traceback; the body
never carries one.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

__all__ = ["LOG", "APIError", "error_body", "exception_handlers", "invalid"]

LOG = logging.getLogger("edge_sdk.serve")

#: HTTP status -> the OpenAI error ``type``
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
}


class APIError(Exception):
    """A failure answered with ``status`` and an OpenAI-shaped body (``headers`` added)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.message, self.param, self.code)

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def error_body(
    status: int, message: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """The OpenAI error object for ``status``."""
    return {
        "error": {
            "message": message,
            "type": _TYPES.get(status, "server_error"),
            "param": param,
            "code": code,
        }
    }


def invalid(param: str | None, message: str, code: str = "invalid_value") -> APIError:
    """A 400 about one request field."""
    return APIError(400, message, param=param, code=code)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message, code = f"no such route: {request.method} {request.url.path}", "not_found"
    elif exc.status_code == 405:
        message, code = (
            f"{request.method} is not allowed on {request.url.path}",
            "method_not_allowed",
        )
    else:
        message, code = str(exc.detail), None
    return APIError(exc.status_code, message, code=code, headers=dict(exc.headers or {})).response()


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Starlette raises the exception again after this response, so the ASGI server logs it
    # with its traceback.
    return APIError(
        500,
        f"the server hit an unexpected error; it is logged on the server ({type(exc).__name__})",
        code="internal_error",
    ).response()


def exception_handlers() -> dict[Any, Any]:
    """Starlette's ``exception_handlers`` that answer every failure in the OpenAI shape."""
    return {APIError: _api_error, HTTPException: _http_error, Exception: _unexpected}
