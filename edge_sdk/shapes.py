"""Shape constants shared by the exporter (engine profiles) and the runtime (prefill, EP profiles).

``PREFILL_CHUNK``: prompt tokens per prefill call. The runtime feeds long prompts in chunks of
this size on top of the cache, so an engine's prefill profile never needs a longer sequence, and
the deployment sizes pods by it.

Profile ranges, (min, opt, max) per symbolic dimension of the standard graph (``batch`` is 1)::

    profile                   sequence       past_sequence       total_sequence (mask)
    prefill (edge-engine)     1 .. chunk     0 .. max - 1        1 .. max
    decode  (edge-engine)     1              0 .. max - 1        1 .. max
    TensorRT EP (one)         1 .. chunk     0 .. max - 1        past + sequence

``chunk`` is ``min(max, PREFILL_CHUNK)``.
"""

from __future__ import annotations

from edge_sdk.errors import ConfigError

__all__ = ["PREFILL_CHUNK", "Range", "dim_ranges", "ep_ranges", "prefill_chunk"]

PREFILL_CHUNK = 256

#: (min, opt, max) of one dimension.
Range = tuple[int, int, int]


def prefill_chunk(max_seq_len: int) -> int:
    """The longest prefill call for a context of ``max_seq_len`` positions."""
    return min(max_seq_len, PREFILL_CHUNK)


def dim_ranges(max_seq_len: int, decode: bool) -> dict[str, Range]:
    """(min, opt, max) of each symbolic dimension in ``edge-engine``'s prefill or decode profile."""
    if max_seq_len < 2:
        raise ConfigError(f"--max-seq-len must be at least 2, got {max_seq_len}")
    chunk = prefill_chunk(max_seq_len)
    last = max_seq_len - 1
    if decode:
        past_opt = max_seq_len // 2
        return {
            "batch": (1, 1, 1),
            "sequence": (1, 1, 1),
            "past_sequence": (0, past_opt, last),
            "total_sequence": (1, past_opt + 1, max_seq_len),
        }
    seq_opt = max(1, chunk // 2)
    return {
        "batch": (1, 1, 1),
        "sequence": (1, seq_opt, chunk),
        "past_sequence": (0, 0, last),
        "total_sequence": (1, seq_opt, max_seq_len),
    }


def ep_ranges(max_seq_len: int) -> dict[str, Range]:
    """``sequence`` and ``past_sequence`` of the one profile the runtime gives the TensorRT EP
    (the mask's length is their sum)."""
    return {
        "sequence": (1, 1, prefill_chunk(max_seq_len)),
        "past_sequence": (0, max_seq_len // 2, max_seq_len - 1),
    }
