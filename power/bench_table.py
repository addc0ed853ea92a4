"""The backend report as a table for a terminal (the JSON report holds the same figures)."""

from __future__ import annotations

from typing import Any

from edge_sdk.power.bench_host import host_line

__all__ = ["report_lines"]

_MIB = 2**20
_COLUMNS = (
    ("backend", 17),
    ("prefill tok/s", 13),
    ("decode tok/s", 12),
    ("prefill tok/J", 13),
    ("decode tok/J", 12),
    ("peak RSS", 9),
    ("GPU mem", 8),
    ("same prefix", 11),
    ("top-1", 6),
    ("max |dlogit|", 12),
)


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / _MIB:.0f} MiB"


def _cells(row: dict[str, Any]) -> list[str]:
    prefill, decode = row.get("prefill") or {}, row.get("decode") or {}
    memory = row.get("memory") or {}
    agree = row.get("agreement")
    return [
        row["name"],
        _num(prefill.get("tokens_per_s")),
        _num(decode.get("tokens_per_s")),
        _num(prefill.get("tokens_per_joule"), 2),
        _num(decode.get("tokens_per_joule"), 2),
        _mib(memory.get("rss_peak_bytes")),
        _mib((memory.get("gpu") or {}).get("bytes")),
        f"{agree['matching_prefix']}/{agree['tokens']}" if agree else "-",
        _num(agree["top1_agreement"], 3) if agree else "-",
        _num(agree["max_logit_diff"], 4) if agree else "-",
    ]


def report_lines(report: dict[str, Any]) -> list[str]:
    """Header, one row per backend (an unusable or failed one with its reason), notes, host."""
    mode = report["mode"]
    mode_text = mode.get("current") or mode.get("note") or "unknown"
    lines = [
        f"bench {report['bundle']['path']}: {report['prompt_tokens']}-token prompt, "
        f"{report['new_tokens']} new tokens (greedy, end-of-text ignored), median of "
        f"{report['repeats']} run{'s' if report['repeats'] != 1 else ''}; mode: {mode_text}; "
        f"sensor: {report['sensor'] or 'no sensor (tok/J not measured)'}",
        "  ".join(
            f"{title:>{width}}" if i else f"{title:<{width}}"
            for i, (title, width) in enumerate(_COLUMNS)
        ),
    ]
    for row in report["backends"]:
        if row["status"] != "ok":
            lines.append(f"{row['name']:<17}  {row['status']}: {row['reason']}")
            continue
        cells = _cells(row)
        lines.append(
            "  ".join(
                f"{cell:>{width}}" if i else f"{cell:<{width}}"
                for i, (cell, (_, width)) in enumerate(zip(cells, _COLUMNS, strict=True))
            )
        )
    if report["reference"]:
        lines.append(
            f"agreement with {report['reference']} over the first {report['new_tokens']} greedy "
            "tokens: same prefix = generated ids equal before the first difference; top-1 and "
            "max |dlogit| = fed the reference's ids"
        )
    if report.get("prompt_note"):
        lines.append(report["prompt_note"])
    lines.append(host_line(report["host"]))
    return lines
