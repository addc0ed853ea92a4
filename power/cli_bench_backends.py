"""``edge-power bench BUNDLE --backends all``: every usable backend on one bundle, one report.

The table goes to stdout (``--json``: the report as one object), ``--output FILE`` writes the
report atomically. Exit 0 when every backend asked for ran or is unusable here (that is an
answer: its reason is in the report); 1 when one that is usable failed to start or run.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edge_sdk.bundle import Bundle, load_bundle
from edge_sdk.cli_support import EXIT_OK, print_json
from edge_sdk.errors import BackendUnavailableError, PowerError
from edge_sdk.power.backend_bench import (
    CPU_VARIANTS,
    REFERENCE,
    BackendResult,
    BenchPlan,
    BenchRuntime,
    bench_backend,
)
from edge_sdk.power.bench_agreement import Reference
from edge_sdk.power.bench_host import host_record
from edge_sdk.power.bench_table import report_lines
from edge_sdk.power.cli_measure import _maybe_mode, _note, _sensor_or_none
from edge_sdk.power.files import write_json_atomic
from edge_sdk.power.nvpmodel import NvpModel
from edge_sdk.tokenizer import Tokenizer

__all__ = ["REPORT_VERSION", "backend_names", "cmd_bench_backends", "prompt_plan"]

#: Version of the report's fields (added to, never changed).
REPORT_VERSION = 1

#: The measured prompt, repeated until it has ``--prompt-tokens`` tokens.
PROMPT_TEXT = (
    "The Jetson Orin is a small computer for robots and cameras. It runs language models on "
    "its GPU or its CPU, and a power mode decides how many watts it may draw. "
)
#: Flags of the one-backend bench that a backend report does not take.
_SINGLE_BACKEND_FLAGS = ("budget", "plot", "log", "summary", "csv")


def backend_names(spec: str, runtime: BenchRuntime) -> list[str]:
    """``all`` or a comma-separated list, validated, the reference first when it is asked for."""
    known = [REFERENCE, *CPU_VARIANTS, *(b for b in runtime.backends if b != REFERENCE)]
    if spec.strip() == "all":
        return known
    asked = [name.strip() for name in spec.split(",") if name.strip()]
    unknown = [name for name in asked if name not in known]
    if unknown or not asked:
        raise PowerError(
            f"unknown backend {', '.join(unknown) or repr(spec)} in --backends; "
            f"choose all or some of: {','.join(known)}"
        )
    return [name for name in known if name in asked]


def prompt_plan(bundle: Bundle, prompt_tokens: int, new_tokens: int) -> tuple[list[int], str]:
    """The measured prompt's ids (``prompt_tokens`` of them, fewer when prompt and output would
    not fit the bundle's context) and a note when it was shortened ("" otherwise)."""
    room = bundle.max_sequence_length - new_tokens
    if room < 1:
        raise PowerError(
            f"--tokens {new_tokens} leaves no room for a prompt in the bundle's context of "
            f"{bundle.max_sequence_length} positions: ask for fewer tokens"
        )
    count = min(prompt_tokens, room)
    tokenizer = Tokenizer(bundle.tokenizer_path)
    ids = tokenizer.encode(PROMPT_TEXT, add_special_tokens=True)
    body = tokenizer.encode(PROMPT_TEXT)
    while len(ids) < count:
        ids += body
    note = (
        f"prompt shortened to {count} tokens: {prompt_tokens} + {new_tokens} new tokens exceed "
        f"the bundle's context of {bundle.max_sequence_length}"
        if count < prompt_tokens
        else ""
    )
    return ids[:count], note


def _mode_now(args: argparse.Namespace) -> dict[str, Any]:
    nvp = NvpModel(conf=args.conf)
    if not nvp.program:
        return {"requested": args.mode, "current": None, "note": "not a Jetson: no nvpmodel"}
    try:
        return {"requested": args.mode, "current": nvp.current().label()}
    except (PowerError, BackendUnavailableError) as exc:
        return {"requested": args.mode, "current": None, "note": str(exc)}


def _bundle_record(bundle: Bundle) -> dict[str, Any]:
    fused = bundle.spec.fused_graph
    return {
        "path": str(bundle.path),
        "model": bundle.manifest.get("model", {}).get("name"),
        "precision": bundle.precision,
        "graph": bundle.manifest["graph"]["file"],
        "fused_graph": fused.file if fused else None,
        "engines": [e.get("file") for e in bundle.manifest.get("engines") or []],
        "max_sequence_length": bundle.max_sequence_length,
    }


def _check_flags(args: argparse.Namespace) -> None:
    given = [f"--{name}" for name in _SINGLE_BACKEND_FLAGS if getattr(args, name, None)]
    if args.duration:
        given.append("--duration")
    if given:
        raise PowerError(
            f"{', '.join(given)} measure one backend: drop --backends, or drop {given[0]}"
        )
    if min(args.tokens, args.prompt_tokens, args.repeats) < 1:
        raise PowerError("--tokens, --prompt-tokens and --repeats must be at least 1")


def run_report(
    args: argparse.Namespace, runtime: BenchRuntime, bundle: Bundle, names: list[str]
) -> dict[str, Any]:
    """Measure backends ``names`` on ``bundle`` and return the report."""
    ids, note = prompt_plan(bundle, args.prompt_tokens, args.tokens)
    if note:
        _note(note)
    sensor = _sensor_or_none(args.sensor)
    plan = BenchPlan(ids, ids[::-1], args.tokens, sensor, args.interval, args.repeats)
    reference: Reference | None = None
    rows: list[BackendResult] = []
    try:
        for name in names:
            row, ref = bench_backend(
                runtime,
                bundle.path,
                name,
                plan,
                reference,
                bundle.spec.fused_graph is not None,
                args.debug,
            )
            reference = ref or reference
            rows.append(row)
            _note(f"{name}: {row.status}")
    finally:
        if sensor:
            sensor.close()
    return {
        "report_version": REPORT_VERSION,
        "bundle": _bundle_record(bundle),
        "host": host_record(runtime.onnxruntime),
        "mode": _mode_now(args),
        "sensor": sensor.describe() if sensor else None,
        "prompt_tokens": len(ids),
        "prompt_note": note or None,
        "new_tokens": args.tokens,
        "repeats": args.repeats,
        "greedy": True,
        "ignore_eos": True,
        "reference": REFERENCE if REFERENCE in names else None,
        "backends": [row.to_dict() for row in rows],
    }


def cmd_bench_backends(args: argparse.Namespace) -> int:
    """``edge-power bench BUNDLE --backends ...`` (see the module docstring)."""
    _check_flags(args)
    runtime: BenchRuntime = args.load_bench_runtime()
    names = backend_names(args.backends, runtime)
    bundle = load_bundle(args.bundle)  # checked once; each backend then loads it unverified
    with _maybe_mode(args):
        if args.dry_run:
            _note(f"dry run: would measure {', '.join(names)} on {args.bundle}")
            return EXIT_OK
        report = run_report(args, runtime, bundle, names)
    if args.output:
        try:
            write_json_atomic(Path(args.output), report, indent=2)
        except OSError as exc:
            raise PowerError(f"cannot write the report {args.output}: {exc}") from exc
    if args.json:
        print_json(report)
    else:
        print("\n".join(report_lines(report)))
    failed = [row for row in report["backends"] if row["status"] == "failed"]
    if failed:
        raise PowerError(
            f"{failed[0]['name']} is usable here but failed: {failed[0]['reason']} (the report "
            "has every backend's row; --debug shows the traceback)"
        )
    return EXIT_OK
