"""``edge-power``: power modes, sensors and efficiency on a Jetson (or any Linux machine).

Commands: ``status``, ``modes``, ``set MODE``, ``restore``, ``monitor``, ``run -- COMMAND``,
``bench BUNDLE`` (``--backends all``: every usable backend, one report). Every command takes
``--json`` (one JSON object on stdout) and ``--debug``. Hardware paths come from
:mod:`edge_sdk.power.paths` (``EDGE_SDK_*`` environment variables).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from edge_sdk._optional import require
from edge_sdk.cli_support import EXIT_OK, add_common_flags, print_json, run_command
from edge_sdk.errors import BackendUnavailableError, PowerError
from edge_sdk.power.paths import sysfs

if TYPE_CHECKING:
    from edge_sdk.power.backend_bench import BenchRuntime

__all__ = ["build_parser", "main"]

PROG = "edge-power"


def _board_model() -> str | None:
    path = sysfs("/sys/firmware/devicetree/base/model")
    try:
        return path.read_text(errors="replace").strip("\x00\n ") or None
    except OSError:
        return None


def _emit(args: argparse.Namespace, data: dict[str, Any], lines: list[str]) -> None:
    if args.json:
        print_json(data)
    else:
        print("\n".join(lines))


def _sensor_lines(args: argparse.Namespace, data: dict[str, Any]) -> list[str]:
    """The sensor part of ``status``; an explicitly requested sensor that fails raises."""
    from edge_sdk.power.sensors import open_sensor, probe_sensors

    if args.sensor == "auto":
        sensor, reasons = probe_sensors()
        if sensor is None:  # a finding, not a failure: tokens/s work without watts
            data["sensor_tried"] = reasons
            return [
                "sensor:  none found (tokens/s still work without watts; --sensor "
                "replay:sample replays a recorded trace)",
                *(f"  {kind + ':':<9}{reason}" for kind, reason in reasons.items()),
            ]
    else:
        sensor = open_sensor(args.sensor)
    with sensor:
        reading = sensor.read()
    data["sensor"] = sensor.describe()
    data["reading"] = reading.to_dict()
    return [
        f"sensor:  {sensor.describe()}",
        f"total:   {reading.total_w:.2f} W ({reading.total_source})",
        *(
            f"  {name:<18} {r.power_w:7.3f} W"
            + (
                f"  {r.voltage_mv:.0f} mV {r.current_ma:.0f} mA"
                if r.voltage_mv is not None and r.current_ma is not None
                else ""
            )
            for name, r in reading.rails.items()
        ),
    ]


def cmd_status(args: argparse.Namespace) -> int:
    """Exit 0 when the status could be read, also off a Jetson or with no sensor found (that is
    the answer); 1 when something that should work failed: nvpmodel, the sensor asked for with
    ``--sensor``, an unreadable power-state record (one error line after the status)."""
    from edge_sdk.power.modes import recorded_states
    from edge_sdk.power.nvpmodel import NOT_A_JETSON, NvpModel

    data: dict[str, Any] = {"board": _board_model(), "mode": None, "sensor": None}
    lines = [f"board:   {data['board'] or 'unknown (no device-tree model)'}"]
    errors: list[str] = []
    nvp = NvpModel()
    if nvp.program:
        try:
            mode = nvp.current()
            data["mode"] = {"id": mode.id, "name": mode.name, "watts": mode.watts}
            lines.append(f"mode:    {mode.label()}")
        except (PowerError, BackendUnavailableError) as exc:
            errors.append(str(exc))
            data["mode_error"] = str(exc)
            lines.append("mode:    unknown")
    else:
        lines.append(f"mode:    none ({NOT_A_JETSON})")
    try:
        lines += _sensor_lines(args, data)
    except (PowerError, BackendUnavailableError) as exc:
        errors.append(str(exc))
        data["sensor_error"] = str(exc)
        lines.append("sensor:  none")
    try:
        pending = recorded_states()
    except PowerError as exc:
        errors.append(str(exc))
        pending = {}
        lines.append("recorded previous state: unreadable")
    data["recorded"] = pending
    if pending:
        lines.append(
            f"recorded previous state: {', '.join(pending)} (edge-power restore puts it back)"
        )
    _emit(args, data, lines)
    if errors:
        raise PowerError(errors[0])
    return EXIT_OK


def cmd_modes(args: argparse.Namespace) -> int:
    from edge_sdk.power.nvpmodel import NvpModel

    nvp = NvpModel(conf=args.conf)
    modes = nvp.modes()
    current = nvp.current().id if nvp.program else None
    default = nvp.config().default_id
    rows = [
        {
            "id": m.id,
            "name": m.name,
            "watts": m.watts,
            "default": m.id == default,
            "current": m.id == current,
            "tpc_pg_mask": m.tpc_pg_mask,
        }
        for m in modes
    ]
    lines = [
        f"{'*' if r['current'] else ' '} {r['id']:>2}  {r['name']:<14} "
        f"{(str(r['watts']).rstrip('0').rstrip('.') + ' W') if r['watts'] else 'no cap':<8}"
        f"{'  (default)' if r['default'] else ''}"
        for r in rows
    ]
    footer = (
        "* = current mode"
        if nvp.program
        else f"from {nvp.conf}; no nvpmodel here, so no current mode"
    )
    _emit(
        args,
        {"modes": rows, "default": default, "current": current, "conf": str(nvp.conf)},
        [*lines, footer],
    )
    return EXIT_OK


def cmd_set(args: argparse.Namespace) -> int:
    from edge_sdk.power.jetson_clocks import JetsonClocks
    from edge_sdk.power.modes import record_state
    from edge_sdk.power.nvpmodel import NvpModel

    steps: list[Any] = [NvpModel(conf=args.conf)]
    if args.jetson_clocks:
        steps.append(JetsonClocks())
    changes = []
    for controller in steps:
        target = args.mode if controller.kind == "nvpmodel" else "max"
        planned = controller.apply(target, dry_run=True)  # validates before anything changes
        if args.dry_run:
            changes.append(planned)
            continue
        record_state(controller.kind, controller.snapshot())
        changes.append(controller.apply(target))
    lines = [c.describe() for c in changes]
    if not args.dry_run and any(c.changed for c in changes):
        lines.append("the previous state is recorded: 'edge-power restore' puts it back")
    _emit(args, {"changes": [c.to_dict() for c in changes], "dry_run": args.dry_run}, lines)
    return EXIT_OK


def cmd_restore(args: argparse.Namespace) -> int:
    from edge_sdk.power.modes import recorded_states, restore_recorded

    if args.dry_run:
        states = recorded_states()
        lines = [f"would restore {k}: {v}" for k, v in states.items()] or ["nothing recorded"]
        _emit(args, {"recorded": states, "dry_run": True}, lines)
        return EXIT_OK
    changes = restore_recorded()
    lines = [c.describe() for c in changes] or ["nothing recorded: no power state to restore"]
    _emit(args, {"restored": [c.to_dict() for c in changes]}, lines)
    return EXIT_OK


def _seconds(text: str, positive: bool = True) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise argparse.ArgumentTypeError(
            f"must be a {'positive' if positive else 'non-negative'} number of seconds, got {text}"
        )
    return value


def _positive_seconds(text: str) -> float:
    return _seconds(text)


def _non_negative_seconds(text: str) -> float:
    return _seconds(text, positive=False)


def _add_sensor_flags(p: argparse.ArgumentParser, interval: float | None = None) -> None:
    p.add_argument(
        "--sensor",
        default="auto",
        metavar="SPEC",
        help="power sensor: auto (default), ina3221, jtop, nvml[:GPU], rapl, "
        "replay:FILE (a recorded CSV/JSONL power log, looped) or replay:sample "
        "(the packaged sample trace)",
    )
    p.add_argument(
        "--interval",
        type=_positive_seconds,
        default=interval,
        metavar="S",
        help="seconds between power samples (default: the sensor's refresh, ~0.1)",
    )


def _add_conf_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--conf",
        metavar="FILE",
        help="the board's nvpmodel configuration (read for its modes and passed to "
        "nvpmodel with -f; default $EDGE_SDK_NVPMODEL_CONF or /etc/nvpmodel.conf)",
    )


def _add_mode_flags(p: argparse.ArgumentParser, mode_required: bool = False) -> None:
    p.add_argument(
        "--mode",
        required=mode_required,
        metavar="MODE",
        help="power mode by id, name or budget (15W finds 15W or MODE_15W); the "
        "previous mode is restored afterwards",
    )
    _add_conf_flag(p)
    p.add_argument(
        "--jetson-clocks",
        action="store_true",
        help="also pin clocks with jetson_clocks (stored and restored)",
    )
    p.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")


def build_parser() -> argparse.ArgumentParser:
    """The ``edge-power`` argument parser."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Power modes, power sensors and tokens/s per watt on Jetson Orin "
        "(and other Linux machines).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("status", help="board, power sensor, current mode, rails and total power")
    p.add_argument("--sensor", default="auto", metavar="SPEC", help="sensor to read (see monitor)")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("modes", help="list the power modes (id, name, watts, default, current)")
    _add_conf_flag(p)
    p.set_defaults(func=cmd_modes)
    p = sub.add_parser("set", help="switch the power mode and record the previous one")
    p.add_argument("mode", metavar="MODE", help="id (2), name (MAXN, MODE_15W) or budget (15W)")
    p.add_argument("--jetson-clocks", action="store_true", help="also pin clocks (jetson_clocks)")
    p.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    _add_conf_flag(p)
    p.set_defaults(func=cmd_set)
    p = sub.add_parser("restore", help="put back the recorded previous mode (also after a crash)")
    p.add_argument("--dry-run", action="store_true", help="print what is recorded, change nothing")
    p.set_defaults(func=cmd_restore)

    from edge_sdk.power import cli_measure

    p = sub.add_parser("monitor", help="sample power and print it (Ctrl-C stops, exit 0)")
    _add_sensor_flags(p, 0.1)
    p.add_argument(
        "--duration", type=_non_negative_seconds, metavar="S", help="stop after S seconds"
    )
    p.add_argument("--log", metavar="FILE", help="write every sample to this JSONL file")
    p.set_defaults(func=cli_measure.cmd_monitor)
    p = sub.add_parser(
        "run",
        help="run a command under a mode while sampling power",
        usage=f"{PROG} run [--mode MODE] [--log FILE] [options] -- COMMAND ...",
    )
    _add_mode_flags(p)
    _add_sensor_flags(p)
    p.add_argument("--log", metavar="FILE", help="write every sample to this JSONL file")
    p.add_argument(
        "cmd",
        nargs=argparse.REMAINDER,
        metavar="COMMAND",
        help="the program and its arguments, after --",
    )
    p.set_defaults(func=cli_measure.cmd_run)
    p = sub.add_parser(
        "bench",
        help="generate with a bundle under a mode; log tokens/s per watt (--backends: every "
        "usable backend, one report)",
    )
    p.add_argument("bundle", metavar="BUNDLE", help="a bundle directory made by edge-export")
    _add_mode_flags(p)
    _add_sensor_flags(p)
    p.add_argument(
        "--tokens",
        type=int,
        default=128,
        metavar="N",
        help="new tokens per generation (default 128); end-of-text is ignored so "
        "every generation measures N (fewer only if the context fills)",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=0.0,
        metavar="S",
        help="repeat generations until S seconds have passed, so slow sensors "
        "(~10 Hz) see enough samples; prefill is the first generation's prompt, "
        "later prompts count in the decode phase (default 0: one generation)",
    )
    p.add_argument(
        "--prompt",
        default="The Jetson Orin is",
        help="the prompt (its tokens are the prefill phase); --backends measures a fixed "
        "English text cut to --prompt-tokens instead",
    )
    p.add_argument(
        "--budget",
        type=float,
        metavar="W",
        help="software power cap in watts (pacing governor) for budgets no mode has",
    )
    p.add_argument("--log", metavar="FILE", help="JSONL log: one line per sample and per token")
    p.add_argument("--summary", metavar="FILE", help="write the summary as JSON")
    p.add_argument("--csv", metavar="FILE", help="write the summary as CSV (one row per phase)")
    p.add_argument(
        "--plot",
        metavar="FILE",
        help="PNG of power and token rate (needs the plot extra: matplotlib; checked "
        "before the run)",
    )
    p.add_argument(
        "--backends",
        metavar="LIST",
        help="measure the bundle on each of these backends and write one report: all, or "
        "a comma-separated list of ort-cpu, ort-cpu-standard (the standard graph on the "
        "CPU), ort-cuda, ort-tensorrt, tensorrt; an unusable one is listed with the reason",
    )
    p.add_argument(
        "--prompt-tokens",
        type=int,
        default=512,
        metavar="N",
        help="with --backends: the measured prompt's length in tokens (default 512; fewer "
        "when prompt and --tokens exceed the bundle's context)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        metavar="R",
        help="with --backends: measured generations per backend (default 3): rates are "
        "their median, tok/J is over all of them",
    )
    p.add_argument(
        "--output",
        metavar="FILE",
        help="with --backends: write the report as JSON to FILE (atomically)",
    )
    p.set_defaults(func=_bench, load_runtime=_load_runtime, load_bench_runtime=_load_bench_runtime)
    for action in sub.choices.values():
        add_common_flags(action)
    return parser


def _dispatch(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args))
    except OSError as exc:  # sysfs / state files: translate at the boundary
        raise PowerError(f"{exc.strerror or exc}: {getattr(exc, 'filename', '') or ''}") from exc


def _load_runtime() -> Any:
    """The runtime's ``load`` (bench composes power with the runtime; nothing else in power
    does)."""
    try:
        from edge_sdk.runtime import load  # composed at the top only: power never needs runtime
    except (ImportError, AttributeError) as exc:
        raise PowerError(
            "the runtime (edge_sdk.runtime.load) is not available yet, so bench "
            "cannot generate; measure any program with: edge-power run -- COMMAND"
        ) from exc
    return load


def _load_bench_runtime() -> BenchRuntime:
    """The runtime as the backend report uses it: ``load``, the backend names, each backend's
    availability check and onnxruntime's version and providers (composed here, at the top)."""
    load = _load_runtime()
    from edge_sdk.power.backend_bench import BenchRuntime
    from edge_sdk.runtime.backend import BACKEND_TABLE, BACKENDS

    def check(name: str) -> None:
        BACKEND_TABLE[name].backend_class().check_available()

    try:
        onnxruntime = require("onnxruntime", "The backend report")
        ort: dict[str, Any] = {
            "version": onnxruntime.__version__,
            "providers": list(onnxruntime.get_available_providers()),
        }
    except BackendUnavailableError:
        ort = {"version": None, "providers": []}
    return BenchRuntime(load=load, backends=BACKENDS, check=check, onnxruntime=ort)


def _bench(args: argparse.Namespace) -> int:
    from edge_sdk.power import cli_bench_backends, cli_measure

    if args.backends:
        return cli_bench_backends.cmd_bench_backends(args)
    if args.output:
        raise PowerError("--output writes a backend report: add --backends all (or a list)")
    return cli_measure.cmd_bench(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``edge-power``."""
    return run_command(_dispatch, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
