"""Readable text for plans: one plan in sections, or a comparison table."""

from __future__ import annotations

from collections.abc import Sequence

from edge_sdk.planner.cache import CacheEstimate
from edge_sdk.planner.plan import Plan
from edge_sdk.planner.units import format_bytes as _size
from edge_sdk.planner.units import format_count, format_flops, format_seconds, significant

__all__ = ["format_comparison", "format_plan"]

_GB = 1e9
_LIMITS = {"model": "the model's limit", "bundle": "the bundle's limit"}


def _context(p: Plan) -> str:
    return f"context {p.context}" + (
        f" ({_LIMITS[p.context_limit_source]})" if p.context_capped else ""
    )


def _rows(rows: Sequence[tuple[str, str]], indent: int = 2) -> list[str]:
    width = max(len(label) for label, _ in rows)
    return [f"{' ' * indent}{label:<{width}}  {value}" for label, value in rows]


def _cache_rows(c: CacheEstimate) -> list[tuple[str, str]]:
    """The cache: what this runtime allocates and, for sliding or linear-attention layers, the
    split by layer type and what the model needs."""
    per_copy = c.allocated // c.copies
    head = f"{_size(c.allocated)}   {_size(per_copy)} per copy, x{c.copies} (the runtime's "
    head += "past/present buffers)"
    if c.needed != per_copy:
        head += f"; the model needs {_size(c.needed)} per copy"
    rows = [(f"KV cache ({c.kv_dtype}, {c.context} x {c.batch})", head)]
    if not (c.sliding_layers or c.linear_layers):
        return rows
    if c.full_layers:
        rows.append(
            (
                f"  full attention ({c.full_layers} layers)",
                f"{_size(c.full)}   per copy: {c.context} positions each",
            )
        )
    if c.sliding_layers:
        kept = min(c.window or c.context, c.context)
        rows.append(
            (
                f"  sliding window ({c.sliding_layers} layers)",
                f"{_size(c.sliding_allocated)}   per copy: {c.context} positions each, as this "
                f"runtime keeps them; the window needs {kept}: {_size(c.sliding)}",
            )
        )
    if c.linear_layers:
        rows.append(
            (
                f"  linear-attention state ({c.linear_layers} layers)",
                f"{_size(c.state)}   per copy: {c.state_values:,} {c.state_dtype} values per "
                "layer and sequence, whatever the context",
            )
        )
    return rows


def format_plan(p: Plan) -> str:
    """The full report of one plan."""
    m, s, e, t, r = p.memory, p.speed, p.energy, p.tco, p.rule_of_thumb
    w = m.weights
    unit = "TOPS" if "int8" in p.precision else "TFLOPS"
    lines = [
        f"{p.model} ({format_count(p.parameters)} parameters) on {p.device_title} ({p.device}), "
        f"mode {p.mode} ({p.budget_w:g} W), {p.precision}, {_context(p)}, batch {p.batch}",
        "",
        "Memory (1 GB = 10^9 bytes, 1 MB = 10^6)",
    ]
    weights_detail = (
        f"layers {_size(w.layers)}, embedding {_size(w.embedding)}, "
        f"LM head {_size(w.lm_head) if w.lm_head else 'tied'}, "
        f"norms+biases {_size(w.norms_biases)}"
        + (f", tied head's load-time copy {_size(w.tied_copy)}" if w.tied_copy else "")
    )
    limit = "memory-limited" if p.max_context_limit == "memory" else _LIMITS[p.max_context_limit]
    memory_rows = [
        (f"weights ({w.precision})", f"{_size(w.total)}   {weights_detail}"),
        *_cache_rows(m.cache),
        (f"prefill workspace ({s.prompt_tokens}-token prompt)", _size(m.workspace)),
        ("runtime overhead", _size(m.overhead)),
        ("total", _size(m.total)),
        (
            "usable",
            f"{_size(m.usable)}   ({_size(m.device_memory)} - {_size(m.reserved)} "
            f"OS+CUDA, less {m.headroom:.0%} headroom)",
        ),
        ("fits", f"yes, {_size(m.free)} free" if m.fits else f"NO, {_size(-m.free)} short"),
        (f"max context (batch {p.batch})", f"{p.max_context} ({limit})"),
        (f"max batch (context {p.context})", str(p.max_batch)),
    ]
    stored = f"{_size(w.stored)} estimated"
    if p.bundle_model_bytes is not None:
        stored += f", {_size(p.bundle_model_bytes)} measured"
    memory_rows.insert(1, ("  stored in the bundle", stored))
    lines += _rows(memory_rows)
    lines += ["", f"Speed (roofline upper bounds, mode {p.mode})"]
    lines += _rows(
        [
            ("DRAM bandwidth", f"{s.bandwidth_bytes_s / _GB:.1f} GB/s"),
            ("GPU peak", f"{s.peak_ops_s / 1e12:.1f} {unit} (dense)"),
            (
                f"time to first token ({s.prompt_tokens}-token prompt)",
                f">= {format_seconds(s.ttft_s)} ({s.ttft_bound}-bound, "
                f"{format_flops(s.prefill_flops)})",
            ),
            (
                "decode, weights only",
                f"<= {s.weights_only_tps:.1f} tok/s "
                f"({s.bandwidth_bytes_s / _GB:.1f} GB/s / "
                f"{_size(w.read_per_token)} read per token)",
            ),
            (
                f"decode at context {p.context}, batch {p.batch}",
                f"<= {s.decode_tps:.1f} tok/s ({s.decode_bound}-bound, "
                f"{_size(s.bytes_per_step)} and "
                f"{format_flops(s.decode_flops_per_token * p.batch)} per step)",
            ),
        ]
    )
    if p.backends:
        lines += _rows(
            [
                (
                    f"  on {d.backend}",
                    f"<= {d.decode_tps:.1f} tok/s (bandwidth-bound, {_size(d.bytes_per_step)} "
                    "per step)",
                )
                for d in p.backends
            ]
        )
    lines += ["", "Energy and cost"]
    lines += _rows(
        [
            ("tokens per joule", f"{significant(e.tokens_per_joule)} ({e.source})"),
            ("energy per token", f"{significant(e.joules_per_token)} J"),
            (
                "per million tokens",
                f"{significant(e.kwh_per_million_tokens)} kWh, "
                f"${significant(e.cost_per_million_tokens)} at "
                f"${e.electricity_price:g}/kWh",
            ),
            (
                f"TCO over {t.years:g} years",
                f"${t.total_cost:,.0f} (hardware ${t.hardware_price:,.0f}, "
                f"energy ${t.energy_cost:,.0f} for {t.energy_kwh:,.0f} kWh at "
                f"{t.power_w:g} W, {t.utilisation:.0%} utilisation)",
            ),
            ("TCO per million tokens", f"${significant(t.cost_per_million_tokens)}"),
        ]
    )
    lines += [
        "",
        "Rule of thumb (memory = params x 2 x bytes; FLOPs = 2 x seq x layers x hidden^2)",
    ]
    lines += _rows(
        [
            (
                "memory",
                f"{_size(r.rule_memory_bytes)} by the rule; weights {_size(r.weights_bytes)}, "
                f"total {_size(r.total_bytes)} here",
            ),
            (
                f"prefill of {r.prompt_tokens} tokens",
                f"{format_flops(r.rule_flops)} by the rule; "
                f"{format_flops(r.prefill_flops)} here "
                f"({r.flops_ratio:.1f}x)",
            ),
        ]
    )
    lines += [f"  why: {reason}" for reason in r.reasons]
    return "\n".join(lines)


def format_comparison(plans: Sequence[Plan], by: str, notes: Sequence[str] = ()) -> str:
    """One row per plan; ``by`` is "device" or "precision"."""
    header = (
        by,
        "mode",
        "weights",
        "total",
        "usable",
        "fits",
        "max ctx",
        "TTFT",
        "decode tok/s",
        "J/token",
        "TCO $/Mtok",
    )
    table = [header]
    for p in plans:
        table.append(
            (
                p.device if by == "device" else p.precision,
                p.mode,
                _size(p.memory.weights.total),
                _size(p.memory.total),
                _size(p.memory.usable),
                "yes" if p.memory.fits else "NO",
                str(p.max_context),
                format_seconds(p.speed.ttft_s),
                f"{p.speed.decode_tps:.1f}",
                significant(p.energy.joules_per_token),
                significant(p.tco.cost_per_million_tokens),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    first = plans[0]
    fixed = f"precision {first.precision}" if by == "device" else f"device {first.device}"
    lines = [
        f"{first.model}: {fixed}, {_context(first)}, batch {first.batch} "
        "(decode and TTFT are roofline bounds)",
        "",
    ]
    for index, row in enumerate(table):
        cells = [
            cell.ljust(widths[i]) if i < 2 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    lines += [f"note: {note}" for note in notes]
    return "\n".join(lines)
