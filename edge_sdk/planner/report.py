"""Readable text for plans: one plan in sections, or a comparison table."""

from __future__ import annotations

from collections.abc import Sequence

from edge_sdk.planner.plan import Plan

__all__ = ["format_plan", "format_comparison"]

_GB = 1e9


def _gb(value: float) -> str:
    return f"{value / _GB:.2f}"


def _rows(rows: Sequence[tuple[str, str]], indent: int = 2) -> list[str]:
    width = max(len(label) for label, _ in rows)
    return [f"{' ' * indent}{label:<{width}}  {value}" for label, value in rows]


def format_plan(p: Plan) -> str:
    """The full report of one plan."""
    m, s, e, t, r = p.memory, p.speed, p.energy, p.tco, p.rule_of_thumb
    w = m.weights
    unit = "TOPS" if "int8" in p.precision else "TFLOPS"
    lines = [
        f"{p.model} ({p.parameters / 1e9:.2f} B parameters) on {p.device_title} ({p.device}), "
        f"mode {p.mode} ({p.budget_w:g} W), {p.precision}, context {p.context}, batch {p.batch}",
        "",
        "Memory (GB = 10^9 bytes)",
    ]
    weights_detail = (f"layers {_gb(w.layers)}, embedding {_gb(w.embedding)}, "
                      f"LM head {_gb(w.lm_head) if w.lm_head else 'tied'}, "
                      f"norms+biases {_gb(w.norms_biases)}"
                      + (f", tied head's load-time copy {_gb(w.tied_copy)}" if w.tied_copy else ""))
    memory_rows = [
        (f"weights ({w.precision})", f"{_gb(w.total)}   {weights_detail}"),
        (f"KV cache ({m.kv_dtype}, {p.context} x {p.batch})",
         f"{_gb(m.kv_allocated)}   {_gb(m.kv_cache)} per copy, x{m.kv_allocated // max(m.kv_cache, 1)} "
         "(the runtime's past/present buffers)"),
        (f"prefill workspace ({s.prompt_tokens}-token prompt)", _gb(m.workspace)),
        ("runtime overhead", _gb(m.overhead)),
        ("total", _gb(m.total)),
        ("usable", f"{_gb(m.usable)}   ({_gb(m.device_memory)} - {_gb(m.reserved)} OS+CUDA, "
                   f"less {m.headroom:.0%} headroom)"),
        ("fits", f"yes, {_gb(m.free)} GB free" if m.fits else f"NO, {_gb(-m.free)} GB short"),
        (f"max context (batch {p.batch})", f"{p.max_context}" + (
            " (the model's limit)" if p.max_context_limit == "model" else " (memory-limited)")),
        (f"max batch (context {p.context})", str(p.max_batch)),
    ]
    stored = f"{_gb(w.stored)} estimated"
    if p.bundle_model_bytes is not None:
        stored += f", {_gb(p.bundle_model_bytes)} measured"
    memory_rows.insert(1, ("  stored in the bundle", stored))
    lines += _rows(memory_rows)
    lines += ["", f"Speed (roofline upper bounds, mode {p.mode})"]
    lines += _rows([
        ("DRAM bandwidth", f"{s.bandwidth_bytes_s / _GB:.1f} GB/s"),
        ("GPU peak", f"{s.peak_ops_s / 1e12:.1f} {unit} (dense)"),
        (f"time to first token ({s.prompt_tokens}-token prompt)",
         f">= {s.ttft_s:.3f} s ({s.ttft_bound}-bound, {s.prefill_flops / 1e12:.2f} TFLOP)"),
        ("decode, weights only", f"<= {s.weights_only_tps:.1f} tok/s "
                                 f"({s.bandwidth_bytes_s / _GB:.1f} GB/s / {_gb(w.read_per_token)} GB "
                                 "read per token)"),
        (f"decode at context {p.context}, batch {p.batch}",
         f"<= {s.decode_tps:.1f} tok/s ({s.decode_bound}-bound, {_gb(s.bytes_per_step)} GB and "
         f"{s.decode_flops_per_token * p.batch / 1e9:.1f} GFLOP per step)"),
    ])
    lines += ["", "Energy and cost"]
    lines += _rows([
        ("tokens per joule", f"{e.tokens_per_joule:.3g} ({e.source})"),
        ("energy per token", f"{e.joules_per_token:.3g} J"),
        ("per million tokens", f"{e.kwh_per_million_tokens:.3g} kWh, "
                               f"${e.cost_per_million_tokens:.3g} at ${e.electricity_price:g}/kWh"),
        (f"TCO over {t.years:g} years", f"${t.total_cost:,.0f} (hardware ${t.hardware_price:,.0f}, "
                                        f"energy ${t.energy_cost:,.0f} for {t.energy_kwh:,.0f} kWh at "
                                        f"{t.power_w:g} W, {t.utilisation:.0%} utilisation)"),
        ("TCO per million tokens", f"${t.cost_per_million_tokens:.3g}"),
    ])
    lines += ["", "Rule of thumb (memory = params x 2 x bytes; FLOPs = 2 x seq x layers x hidden^2)"]
    lines += _rows([
        ("memory", f"{_gb(r.rule_memory_bytes)} GB by the rule; weights {_gb(r.weights_bytes)} GB, "
                   f"total {_gb(r.total_bytes)} GB here"),
        (f"prefill of {r.prompt_tokens} tokens", f"{r.rule_flops / 1e12:.2f} TFLOP by the rule; "
                                                 f"{r.prefill_flops / 1e12:.2f} TFLOP here "
                                                 f"({r.flops_ratio:.1f}x)"),
    ])
    lines += [f"  why: {reason}" for reason in r.reasons]
    return "\n".join(lines)


def format_comparison(plans: Sequence[Plan], by: str, notes: Sequence[str] = ()) -> str:
    """One row per plan; ``by`` is "device" or "precision"."""
    header = (by, "mode", "weights GB", "total GB", "usable GB", "fits", "max ctx",
              "TTFT s", "decode tok/s", "J/token", "TCO $/Mtok")
    table = [header]
    for p in plans:
        table.append((
            p.device if by == "device" else p.precision, p.mode, _gb(p.memory.weights.total),
            _gb(p.memory.total), _gb(p.memory.usable), "yes" if p.memory.fits else "NO",
            str(p.max_context), f"{p.speed.ttft_s:.3f}", f"{p.speed.decode_tps:.1f}",
            f"{p.energy.joules_per_token:.3g}", f"{p.tco.cost_per_million_tokens:.3g}",
        ))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    first = plans[0]
    fixed = (f"precision {first.precision}" if by == "device" else f"device {first.device}")
    lines = [f"{first.model}: {fixed}, context {first.context}, batch {first.batch} "
             "(decode and TTFT are roofline bounds)", ""]
    for index, row in enumerate(table):
        cells = [cell.ljust(widths[i]) if i < 2 else cell.rjust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    lines += [f"note: {note}" for note in notes]
    return "\n".join(lines)
