"""What one generation cost: token counts, time to first token, decode speed, latencies."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

__all__ = ["GenerationStats", "StopReason", "summarize"]

#: Why generation ended: an end-of-sequence token, a stop string (or the response format's
#: grammar is complete: ``"stop"`` too), ``max_new_tokens``, the model's context limit, or the
#: application stopped it.
StopReason = Literal["eos", "stop", "max_new_tokens", "length", "cancelled"]


@dataclass(frozen=True)
class GenerationStats:
    """Statistics of one generation (times in seconds, from the start of the call).

    ``cached_tokens``: the prompt's first tokens whose positions were already in the KV cache
    (reused, not prefilled); ``prefill_tokens_per_s`` counts the others.

    Speculative decoding (zero without it): ``drafted_tokens`` the drafter proposed and the
    model checked, ``accepted_tokens`` of them kept; ``model_calls``: calls of the model that
    produced output tokens (the prefill counts once; plain decoding makes one per token), so
    :attr:`tokens_per_call` is ``new_tokens / model_calls``."""

    prompt_tokens: int
    new_tokens: int
    time_to_first_token_s: float
    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    token_latency_p50_s: float
    token_latency_p95_s: float
    total_s: float
    stop_reason: StopReason
    context_tokens: int
    kv_cache_bytes: int
    backend: str
    cached_tokens: int = 0
    drafted_tokens: int = 0
    accepted_tokens: int = 0
    model_calls: int = 0

    @property
    def acceptance_rate(self) -> float:
        """``accepted_tokens / drafted_tokens`` (0.0 when nothing was drafted)."""
        return self.accepted_tokens / self.drafted_tokens if self.drafted_tokens else 0.0

    @property
    def tokens_per_call(self) -> float:
        """Output tokens per model call (1.0 for plain decoding; 0.0 before any call)."""
        return self.new_tokens / self.model_calls if self.model_calls else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for JSON), with ``acceptance_rate`` and ``tokens_per_call``."""
        return {
            **asdict(self),
            "acceptance_rate": self.acceptance_rate,
            "tokens_per_call": self.tokens_per_call,
        }

    def summary(self) -> str:
        """One human-readable line."""
        cached = f" ({self.cached_tokens} cached)" if self.cached_tokens else ""
        return (
            f"{self.prompt_tokens} prompt{cached} + {self.new_tokens} new tokens, "
            f"TTFT {self.time_to_first_token_s * 1e3:.1f} ms, "
            f"decode {self.decode_tokens_per_s:.1f} tok/s "
            f"(p50 {self.token_latency_p50_s * 1e3:.2f} ms, "
            f"p95 {self.token_latency_p95_s * 1e3:.2f} ms), stop: {self.stop_reason}, "
            f"KV cache {self.kv_cache_bytes / 2**20:.1f} MiB, {self.backend}"
            + (
                f", speculative: {self.accepted_tokens}/{self.drafted_tokens} drafts accepted, "
                f"{self.tokens_per_call:.2f} tokens/call"
                if self.drafted_tokens
                else ""
            )
        )


def summarize(
    *,
    prompt_tokens: int,
    token_times: list[float],
    prefill_s: float,
    total_s: float,
    stop_reason: StopReason,
    context_tokens: int,
    kv_cache_bytes: int,
    backend: str,
    cached_tokens: int = 0,
    drafted_tokens: int = 0,
    accepted_tokens: int = 0,
    model_calls: int | None = None,
) -> GenerationStats:
    """Build :class:`GenerationStats` from the time (since the start) each token appeared
    (``cached_tokens`` of the prompt were reused, not prefilled; ``model_calls`` None: one per
    token, as plain decoding makes)."""
    times = np.asarray(token_times, dtype=np.float64)
    gaps = np.diff(times)
    decode_s = float(times[-1] - times[0]) if times.size > 1 else 0.0
    return GenerationStats(
        prompt_tokens=prompt_tokens,
        new_tokens=int(times.size),
        time_to_first_token_s=float(times[0]) if times.size else 0.0,
        prefill_tokens_per_s=(prompt_tokens - cached_tokens) / prefill_s if prefill_s > 0 else 0.0,
        decode_tokens_per_s=gaps.size / decode_s if decode_s > 0 else 0.0,
        token_latency_p50_s=float(np.percentile(gaps, 50)) if gaps.size else 0.0,
        token_latency_p95_s=float(np.percentile(gaps, 95)) if gaps.size else 0.0,
        total_s=total_s,
        stop_reason=stop_reason,
        context_tokens=context_tokens,
        kv_cache_bytes=kv_cache_bytes,
        backend=backend,
        cached_tokens=cached_tokens,
        drafted_tokens=drafted_tokens,
        accepted_tokens=accepted_tokens,
        model_calls=int(times.size) if model_calls is None else model_calls,
    )
