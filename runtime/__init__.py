"""Runtime: stream tokens from a bundle inside a device application (numpy + onnxruntime).

::

    from edge_sdk.runtime import load

    gen = load("demo-int8")                      # backend="auto": TensorRT EP > CUDA EP > CPU
    for event in gen.stream("Once upon a time", max_new_tokens=64):
        print(event.text, end="", flush=True)
    result = gen.generate("Once upon a time", max_new_tokens=64)
    print(result.stats.decode_tokens_per_s, result.stats.time_to_first_token_s)

    with Engine(load("demo-int8"), slots=4) as engine:   # continuous batching, many requests
        request = engine.submit("Once upon a time", max_new_tokens=64)
        print(request.wait().text)

Never imports torch. See ``runtime/README.md`` for backends, the KV cache and measurements.
"""

from edge_sdk.runtime.backend import (
    AUTO_ORDER,
    BACKENDS,
    Backend,
    BackendOptions,
    available_backends,
    create_backend,
)
from edge_sdk.runtime.constraints import ResponseFormat
from edge_sdk.runtime.detokenize import IncrementalDecoder
from edge_sdk.runtime.drafters import DraftModelDrafter, NGramDrafter, check_draft_pair
from edge_sdk.runtime.engine import Engine, EngineClosedError, QueueFullError, Request, StepRecord
from edge_sdk.runtime.generator import (
    DEFAULT_MAX_NEW_TOKENS,
    ChatPrompt,
    Conversation,
    GenerationResult,
    Generator,
    Stream,
    TokenEvent,
    load,
)
from edge_sdk.runtime.kv_cache import KVCache
from edge_sdk.runtime.logprobs import MAX_LOGPROBS, TokenLogprob, TokenLogprobs
from edge_sdk.runtime.options import GenerationOptions, check_fits
from edge_sdk.runtime.reasoning import ReasoningDelta, ReasoningSplitter, split_reasoning
from edge_sdk.runtime.sampling import Sampler, SamplingOptions
from edge_sdk.runtime.speculative import (
    MAX_DRAFT_TOKENS,
    Drafter,
    DraftLength,
    SamplingDrafter,
    SpeculativeOptions,
)
from edge_sdk.runtime.stats import GenerationStats, StopReason
from edge_sdk.runtime.stops import StopMatcher
from edge_sdk.runtime.tool_calls import (
    ToolCall,
    ToolCallSplitter,
    ToolDelta,
    ToolFormat,
    ToolFunction,
    parse_tool_calls,
    tool_format_for,
)

__all__ = [
    "AUTO_ORDER",
    "BACKENDS",
    "DEFAULT_MAX_NEW_TOKENS",
    "MAX_DRAFT_TOKENS",
    "MAX_LOGPROBS",
    "Backend",
    "BackendOptions",
    "ChatPrompt",
    "Conversation",
    "DraftLength",
    "DraftModelDrafter",
    "Drafter",
    "Engine",
    "EngineClosedError",
    "GenerationOptions",
    "GenerationResult",
    "GenerationStats",
    "Generator",
    "IncrementalDecoder",
    "KVCache",
    "NGramDrafter",
    "QueueFullError",
    "ReasoningDelta",
    "ReasoningSplitter",
    "Request",
    "ResponseFormat",
    "Sampler",
    "SamplingDrafter",
    "SamplingOptions",
    "SpeculativeOptions",
    "StepRecord",
    "StopMatcher",
    "StopReason",
    "Stream",
    "TokenEvent",
    "TokenLogprob",
    "TokenLogprobs",
    "ToolCall",
    "ToolCallSplitter",
    "ToolDelta",
    "ToolFormat",
    "ToolFunction",
    "available_backends",
    "check_draft_pair",
    "check_fits",
    "create_backend",
    "load",
    "parse_tool_calls",
    "split_reasoning",
    "tool_format_for",
]
