"""The measuring ``edge-power`` commands: ``monitor``, ``run -- COMMAND`` and ``bench BUNDLE``."""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from edge_sdk._optional import require
from edge_sdk.cli_support import EXIT_ERROR, EXIT_OK, print_json
from edge_sdk.errors import BackendUnavailableError, PowerError
from edge_sdk.power.efficiency import EfficiencyLog, EfficiencySummary, PhaseFigures
from edge_sdk.power.modes import PowerModeGuard, power_mode, signals_deferred
from edge_sdk.power.nvpmodel import NvpModel
from edge_sdk.power.sampler import PowerSampler, SamplerStats
from edge_sdk.power.sensors import PowerSensor, open_sensor

__all__ = ["cmd_bench", "cmd_monitor", "cmd_run"]


def _note(text: str) -> None:
    print(f"edge-power: {text}", file=sys.stderr, flush=True)


def _sensor_or_none(spec: str) -> PowerSensor | None:
    """The requested sensor; with ``auto`` and none found, None and a warning (tokens/s still)."""
    try:
        return open_sensor(spec)
    except (PowerError, BackendUnavailableError) as exc:
        if spec != "auto":
            raise
        _note(f"warning: no power sensor, measuring time only ({str(exc).split(' (tried')[0]})")
        return None


@contextlib.contextmanager
def _maybe_mode(args: argparse.Namespace) -> Iterator[PowerModeGuard | None]:
    if not args.mode:
        yield None
        return
    nvpmodel = NvpModel(conf=args.conf)
    with power_mode(
        args.mode, jetson_clocks=args.jetson_clocks, dry_run=args.dry_run, controller=nvpmodel
    ) as guard:
        for change in guard.changes:
            _note(change.describe())
        yield guard


def _stats_line(stats: SamplerStats) -> str:
    if stats.energy_j is None:
        return "no power samples"
    return (
        f"energy {stats.energy_j:.2f} J over {stats.duration_s:.2f} s, average "
        f"{stats.avg_w:.2f} W, peak {stats.peak_w:.2f} W ({stats.samples} samples, "
        f"{stats.failures} failed reads)"
    )


def cmd_monitor(args: argparse.Namespace) -> int:
    sensor = open_sensor(args.sensor)
    log = EfficiencyLog(args.log) if args.log else None
    sampler = PowerSampler(sensor, args.interval, on_sample=log.add_sample if log else None)
    started = time.monotonic()
    try:
        with sampler:
            while args.duration is None or time.monotonic() - started < args.duration:
                time.sleep(min(1.0, args.duration or 1.0))
                reading = sampler.latest()
                if reading is not None and not args.json:
                    rails = "  ".join(f"{k}={v:.2f}W" for k, v in reading.rail_watts().items())
                    print(
                        f"{reading.time - started:7.1f} s  total {reading.total_w:6.2f} W  {rails}",
                        flush=True,
                    )
    except KeyboardInterrupt:
        pass  # Ctrl-C is how an open-ended monitor ends
    finally:
        sensor.close()
        if log:
            log.close()
    stats = sampler.stats()
    if args.json:
        print_json({"sensor": sensor.describe(), **stats.to_dict()})
    else:
        print(_stats_line(stats))
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise PowerError("no command to run: edge-power run [--mode 15W] -- COMMAND ...")
    with _maybe_mode(args) as guard:
        if args.dry_run:
            _note(f"dry run: would run {' '.join(cmd)}")
            if args.json:
                print_json(
                    {
                        "dry_run": True,
                        "changes": [c.to_dict() for c in guard.changes] if guard else [],
                        "command": cmd,
                    }
                )
            return EXIT_OK
        sensor = _sensor_or_none(args.sensor)
        log = EfficiencyLog(args.log) if args.log else None
        sampler = (
            PowerSampler(sensor, args.interval, on_sample=log.add_sample if log else None)
            if sensor
            else None
        )
        started = time.monotonic()
        proc: subprocess.Popen[bytes] | None = None
        try:
            if sampler:
                sampler.start()
            with signals_deferred():  # a signal cannot fall between starting the child and
                try:  # holding its handle (the child would outlive the guard)
                    proc = subprocess.Popen(cmd)
                except OSError as exc:
                    raise PowerError(f"cannot run {cmd[0]}: {exc.strerror or exc}") from exc
            code = proc.wait()
        finally:
            if proc is not None and proc.poll() is None:  # interrupted: stop it, then restore
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            stats = sampler.stop() if sampler else None
            if sensor:
                sensor.close()
            if log:
                log.close()
        elapsed = time.monotonic() - started
    result: dict[str, Any] = {
        "command": cmd,
        "returncode": code,
        "elapsed_s": elapsed,
        "mode": args.mode,
        "sensor": sensor.describe() if sensor else None,
        "power": stats.to_dict() if stats else None,
    }
    if args.json:
        print_json(result)
    else:
        print(
            f"{cmd[0]} exited {code} after {elapsed:.2f} s; "
            + (_stats_line(stats) if stats else "no power sensor")
        )
    return code if 0 <= code < 256 else EXIT_ERROR


def _phase_line(p: PhaseFigures) -> str:
    power = (
        f"{p.avg_w:.2f} W avg, {p.peak_w:.2f} W peak, {p.energy_j:.2f} J, "
        f"{p.tokens_per_joule:.3f} tok/s per W, {p.mj_per_token:.1f} mJ/token"
        if p.energy_j and p.tokens_per_joule and p.avg_w and p.peak_w and p.mj_per_token
        else "no power"
    )
    rate = f"{p.tokens_per_s:.1f} tok/s" if p.tokens_per_s else "-"
    count = f"{p.tokens if p.tokens is not None else '?':>5} {p.token_kind} tokens"
    return f"{p.name:<8} {count:<22} {p.duration_s:7.2f} s {rate:>12}  {power}"


def _governor_line(report: dict[str, Any]) -> str:
    avg = report["window_avg_w"]
    paced, unpaced = report["paced_tokens_per_s"], report["unpaced_tokens_per_s"]
    speeds = f" ({paced:.1f} tok/s paced, {unpaced:.1f} unpaced)" if paced and unpaced else ""
    return (
        f"governor budget {report['budget_w']:.2f} W, window average "
        f"{f'{avg:.2f} W' if avg is not None else 'unknown'}, slowdown "
        f"{100 * report['slowdown']:.1f} %{speeds}, waited {report['waited_s']:.2f} s"
    )


def _bench_lines(summary: EfficiencySummary) -> list[str]:
    info = summary.info
    generations = info["generations"]
    header = (
        f"bench {info['bundle']}: {info['prompt_tokens']}-token prompt, "
        f"{info['max_new_tokens']} new tokens per generation (end-of-text ignored), "
        f"{generations} generation{'s' if generations != 1 else ''}, "
        f"stop: {info['stop_reason']}"
    )
    lines = [header]
    lines += [_phase_line(p) for p in [*summary.phases, summary.run]]
    if "governor" in info:
        lines.append(_governor_line(info["governor"]))
    return lines


def cmd_bench(args: argparse.Namespace) -> int:
    if args.tokens < 1:
        raise PowerError("--tokens must be at least 1")
    if args.duration < 0:
        raise PowerError("--duration must not be negative")
    if args.plot:
        require("matplotlib", "--plot")  # before anything runs: one line naming the plot extra
    if args.budget is not None and args.budget <= 0:
        raise PowerError(f"--budget must be a positive number of watts, not {args.budget:g}")
    load = args.load_runtime()
    model = load(args.bundle)
    with _maybe_mode(args):
        if args.dry_run:
            _note(f"dry run: would generate {args.tokens} tokens from {args.bundle}")
            return EXIT_OK
        sensor = _sensor_or_none(args.sensor)
        log = EfficiencyLog(args.log)
        sampler = PowerSampler(sensor, args.interval, on_sample=log.add_sample) if sensor else None
        governor = None
        if args.budget:
            if sampler is None:
                raise PowerError("--budget needs a power sensor")
            from edge_sdk.power.governor import PowerGovernor

            governor = PowerGovernor(args.budget, sampler)
        generations, stop_reason = 0, None
        try:
            if sampler:
                sampler.start()
                time.sleep(min(0.2, 2 * sampler.interval))  # a baseline before prefill starts
            until = time.monotonic() + args.duration
            while True:
                # a benchmark measures the tokens it was asked for: end-of-text does not stop it
                stream = model.stream(args.prompt, max_new_tokens=args.tokens, ignore_eos=True)
                if generations == 0:
                    log.start(prompt_tokens=len(stream.prompt_ids))
                for event in stream:
                    log.token(text=event.text, token_id=event.token_id)
                    if governor:
                        governor.pace()
                generations += 1
                stop_reason = stream.result.stop_reason if stream.result else None
                if time.monotonic() >= until:
                    break
            log.stop()
        finally:
            stats = sampler.stop() if sampler else None
            if sensor:
                sensor.close()
        info: dict[str, Any] = {
            "bundle": str(args.bundle),
            "mode": args.mode,
            "sensor": sensor.describe() if sensor else None,
            "sampler": stats.to_dict() if stats else None,
            "max_new_tokens": args.tokens,
            "ignore_eos": True,
            "generations": generations,
            "stop_reason": stop_reason,
        }
        if governor:
            info["governor"] = governor.report().to_dict()
        summary = log.write_summary(args.summary, args.csv, info)
        log.close()
        if args.plot:
            from edge_sdk.power.plot import plot_efficiency

            plot_efficiency(log, args.plot)
    if args.json:
        print_json(summary.to_dict())
    else:
        print("\n".join(_bench_lines(summary)))
    return EXIT_OK
