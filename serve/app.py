"""The routes of ``edge-serve``: the OpenAI API over the engine, health and metrics.

``create_app(state)`` gives the Starlette application; its lifespan starts loading the model
(the socket is already open, so ``/health`` answers 503 meanwhile) and, at shutdown, closes
the engine after draining it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edge_sdk.chat_template import ChatTemplate
from edge_sdk.errors import ContextFullError, EdgeError, GenerationError
from edge_sdk.runtime.constraints import ResponseFormat
from edge_sdk.runtime.engine import Engine
from edge_sdk.runtime.options import check_fits
from edge_sdk.runtime.reasoning import (
    ReasoningSplitter,
    prompt_opens_reasoning,
    reasoning_choice,
    template_thinks,
)
from edge_sdk.runtime.tool_calls import ToolCallSplitter, tool_format_for
from edge_sdk.serve.bridge import EngineCall
from edge_sdk.serve.errors import APIError, exception_handlers, invalid
from edge_sdk.serve.metrics import endpoint_label
from edge_sdk.serve.openai_logprobs import ChatLogprobs, CompletionLogprobs, TokenNames
from edge_sdk.serve.openai_responses import (
    ChatShape,
    CompletionShape,
    ResponseShape,
    finish_reason,
    usage,
)
from edge_sdk.serve.openai_schema import ChatRequest, Sampling, parse_chat, parse_completion
from edge_sdk.serve.openai_tools import ToolRequest
from edge_sdk.serve.request_body import CLIENT_CLOSED, read_json
from edge_sdk.serve.sse import EventStream, wait_disconnect
from edge_sdk.serve.state import ServerState

__all__ = ["create_app"]


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.server
    return state


def _authorize(request: Request, state: ServerState) -> None:
    key = state.settings.api_key
    if key is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), key.encode()):
        raise APIError(
            401,
            "missing or wrong API key: send the header 'Authorization: Bearer "
            "KEY' with the key the server was started with",
            code="invalid_api_key",
        )


async def _body(request: Request, state: ServerState) -> Any:
    settings = state.settings
    return await read_json(request, settings.max_body_bytes, settings.body_timeout_s)


def _check_fits(prompt_tokens: int, engine: Engine, param: str) -> None:
    try:
        check_fits(prompt_tokens, engine.max_context)
    except ContextFullError as exc:
        raise APIError(400, str(exc), param=param, code="context_length_exceeded") from exc


async def _prepare_format(fmt: ResponseFormat, engine: Engine) -> None:
    """Compile the response format for the model off the event loop (the first one for a
    tokenizer takes up to a second); the request's matcher is then a copy."""
    vocab, eos = engine.bundle.config.vocab_size, engine.generator.eos_token_ids
    try:
        await asyncio.to_thread(fmt.prepare, engine.tokenizer, vocab, eos)
    except GenerationError as exc:
        raise invalid("response_format", str(exc)) from exc


async def _answer(
    request: Request,
    state: ServerState,
    engine: Engine,
    prompt_ids: list[int],
    sampling: Sampling,
    shape: ResponseShape,
) -> Any:
    if sampling.options.response_format is not None:
        await _prepare_format(sampling.options.response_format, engine)
    call = EngineCall(state, request.url.path, sampling.stream)
    call.submit(prompt_ids, sampling.options)
    if sampling.stream:
        return EventStream(call, shape, len(prompt_ids))
    gone = asyncio.ensure_future(wait_disconnect(request.receive))
    try:
        waiting: set[asyncio.Future[Any]] = {call.result, gone}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if not call.result.done():  # the client left: free the slot, nobody to answer
        call.cancel()
        return Response(status_code=CLIENT_CLOSED)
    result = call.result.result()
    if call.error is not None:
        raise APIError(
            500,
            "the model failed while generating (logged on the server: "
            f"{type(call.error).__name__})",
            code="model_error",
        )
    finish = finish_reason(result.stop_reason)
    if finish is None:
        raise APIError(503, "the server shut down before the request finished", code="cancelled")
    body = shape.response(
        result.text,
        finish,
        usage(len(prompt_ids), result.stats.new_tokens, call.energy, result.stats.cached_tokens),
        result.logprobs,
        result.prompt_logprobs,
    )
    return JSONResponse(body)


def _no_tool_support(template: ChatTemplate, param: str) -> APIError:
    return APIError(
        400,
        f"this model's chat template ({template.source}) has no tool support: it never renders "
        "'tools' or tool calls, so the model could not see them. Start edge-serve with "
        "--chat-template chatml-tools (ChatML with Hermes-style <tool_call> calls, shipped "
        "with edge-sdk, for ChatML models such as SmolLM2) or --chat-template FILE (a Jinja "
        "template that renders 'tools')",
        param=param,
        code="unsupported_value",
    )


def _tool_splitter(
    tools: ToolRequest, template: ChatTemplate, sampling: Sampling
) -> tuple[ToolCallSplitter | None, Sampling]:
    """The splitter that reads the reply's calls (None when it is not read) and the sampling,
    constrained to the allowed functions' calls for ``required`` or a named function."""
    if not tools.parsed or sampling.options.response_format is not None:
        return None, sampling  # a response_format reply is the format, not a call
    fmt = tool_format_for(template)
    if fmt is None:
        raise APIError(
            400,
            f"this model's chat template ({template.source}) renders tools, but its calls are "
            "in a format edge-serve does not read (it reads Hermes/Qwen <tool_call> JSON and "
            "Llama 3.x JSON calls); give edge-serve --chat-template with a template in one of "
            "those formats, e.g. chatml-tools",
            param="tools",
            code="unsupported_value",
        )
    splitter = fmt.splitter(None if tools.parallel else 1)
    if not tools.constrained:
        return splitter, sampling
    allowed = tools.allowed()
    try:
        constraint = ResponseFormat.grammar(
            fmt.grammar(allowed, parallel=tools.parallel and tools.choice == "required")
        )
    except GenerationError as exc:
        for index, function in enumerate(tools.functions):  # name the function at fault
            if function in allowed and function.parameters is not None:
                try:
                    ResponseFormat.json_schema(function.parameters)
                except GenerationError as bad:
                    raise invalid(f"tools[{index}].function.parameters", str(bad)) from bad
        raise invalid("tools", f"the tool calls cannot be constrained: {exc}") from exc
    except EdgeError as exc:  # llguidance is not installed
        raise invalid("tool_choice", str(exc)) from exc
    options = sampling.options.replace(response_format=constraint)
    return splitter, dataclasses.replace(sampling, options=options)


def _chat_tools(chat: ChatRequest, template: ChatTemplate) -> list[dict[str, Any]] | None:
    """The tool list to render (None: none), after refusing what the template cannot render."""
    tools = chat.tools
    if not template.supports_tools:
        if tools.parsed:
            raise _no_tool_support(template, "tools")
        for index, message in enumerate(chat.messages):
            if "tool_calls" in message:
                raise _no_tool_support(template, f"messages[{index}].tool_calls")
        return None  # tool_choice none: the model never sees them here
    return tools.tools or None


async def chat_completions(request: Request) -> Any:
    state = _state(request)
    _authorize(request, state)
    engine = state.ready_engine()
    settings = state.settings
    chat = parse_chat(await _body(request, state))
    template = settings.chat_template or engine.chat_template
    offered = _chat_tools(chat, template)
    try:
        prompt = engine.generator.chat_prompt(
            chat.messages,
            template_kwargs={**settings.chat_template_kwargs, **chat.template_kwargs},
            tools=offered,
            template=template,
        )
    except GenerationError as exc:
        raise invalid("messages", str(exc)) from exc
    _check_fits(len(prompt.ids), engine, "messages")
    tool_calls, sampling = _tool_splitter(chat.tools, template, chat.sampling)
    split = reasoning_choice(chat.reasoning_format or settings.reasoning_format)
    if split is None:
        split = template_thinks(template)
    if sampling.options.response_format is not None:
        split = False  # the grammar (a response_format, forced tool calls) shapes the whole reply
    logprobs = chat.sampling.options.logprobs is not None
    shape = ChatShape(
        settings.model_name,
        sampling.include_usage,
        ReasoningSplitter(prompt_opens_reasoning(prompt.text)) if split else None,
        chat.include_reasoning,
        tool_calls,
        ChatLogprobs(TokenNames(engine.tokenizer)) if logprobs else None,
    )
    return await _answer(request, state, engine, prompt.ids, sampling, shape)


async def completions(request: Request) -> Any:
    state = _state(request)
    _authorize(request, state)
    engine = state.ready_engine()
    req = parse_completion(await _body(request, state))
    if isinstance(req.prompt, str):
        ids = engine.tokenizer.encode(req.prompt, add_special_tokens=True)
        echo = req.prompt
    else:
        ids = req.prompt
        vocab = engine.tokenizer.vocab_size
        if not all(0 <= i < vocab for i in ids):
            raise invalid("prompt", f"token ids must be in [0, {vocab}) for this model")
        echo = engine.tokenizer.decode(ids) if req.echo else ""
    _check_fits(len(ids), engine, "prompt")
    shape = CompletionShape(
        state.settings.model_name,
        req.sampling.include_usage,
        echo if req.echo else "",
        CompletionLogprobs(TokenNames(engine.tokenizer)) if req.logprobs is not None else None,
    )
    return await _answer(request, state, engine, ids, req.sampling, shape)


def _model_card(state: ServerState) -> dict[str, Any]:
    card: dict[str, Any] = {
        "id": state.settings.model_name,
        "object": "model",
        "created": state.created,
        "owned_by": "edge-sdk",
    }
    if state.engine is not None:
        card["max_context"] = state.engine.max_context
    return card


async def list_models(request: Request) -> Response:
    state = _state(request)
    _authorize(request, state)
    return JSONResponse({"object": "list", "data": [_model_card(state)]})


async def get_model(request: Request) -> Response:
    state = _state(request)
    _authorize(request, state)
    if request.path_params["model_id"] != state.settings.model_name:
        raise APIError(
            404,
            f"no model {request.path_params['model_id']!r} here; this server "
            f"serves {state.settings.model_name!r}",
            param="model",
            code="model_not_found",
        )
    return JSONResponse(_model_card(state))


async def health(request: Request) -> Response:
    status, body = _state(request).health()
    return JSONResponse(body, status_code=status)


async def metrics(request: Request) -> Response:
    return Response(_state(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


class _Tracking:
    """ASGI middleware: counts requests in flight (the drain waits for them) and answered
    ones by endpoint and status."""

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [500]

        async def tracked_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        self.state.in_flight += 1
        try:
            await self.app(scope, receive, tracked_send)
        finally:
            self.state.in_flight -= 1
            self.state.metrics.http_requests.labels(
                endpoint_label(scope["path"]), str(status[0])
            ).inc()


def create_app(state: ServerState) -> Starlette:
    """The ASGI application over ``state`` (which it starts loading at startup)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.start_loading()
        try:
            yield
        finally:
            await asyncio.to_thread(state.shutdown)

    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", get_model, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers=exception_handlers(),
        lifespan=lifespan,
        middleware=[Middleware(_Tracking, state=state)],
    )
    app.state.server = state
    return app
