"""Export time and memory: the streaming exporter against the exporter at an older commit.

    python benchmarks/bench_export.py [--shapes qwen2.5-0.5b,llama-3.2-1b,qwen2.5-1.5b]
        [--methods int8,int4,gptq] [--layers N] [--old-ref 486c832] [--skip-old]
        [--work DIR] [--json OUT]

Each shape (:data:`random_models.SHAPES`, real config.json values) becomes a random-weight
Hugging Face folder once (bf16 safetensors, streamed), optionally cut to ``--layers`` layers.
Each method is then exported by ``edge-export FOLDER --int8|--int4 [--method gptq] --json -o OUT``
in a child process of its own (a new session, so a process group of its own): wall time, peak RSS
(``ru_maxrss`` from ``os.wait4``: the child's exact high-water mark, file-backed pages it touched
included) and the bundle's bytes on disk. "new" is the exporter installed from this working tree
(run with ``--no-eval`` when it has the flag: random weights have no accuracy to gate); "old" is
the tree at ``--old-ref``, extracted with ``git archive`` and installed with
``pip install --no-deps --target`` into the work folder (the working tree is not touched), run
with ``--force`` since it has no ``--no-eval``: it still runs its accuracy evaluation, which the
new one skips. The old one is skipped where it cannot run (float32 weights over protobuf's 2 GiB,
or more RAM than is available); its failures (exit code, last stderr line, timeout) are recorded.
Target: peak RSS <= bundle + 1.5 GB (int8, int4) or + 2.5 GB (gptq). Writes JSON to
``bench-results/export.json`` (``--json``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from host import host_info, host_line
from random_models import SHAPES, hf_config, tensor_specs, write_random_hf_folder

ROOT = Path(__file__).resolve().parents[1]
GB = 1e9
METHODS: dict[str, list[str]] = {
    "int8": ["--int8"],
    "int4": ["--int4"],
    "gptq": ["--int4", "--method", "gptq"],
}
HEADROOM_GB = {"int8": 1.5, "int4": 1.5, "gptq": 2.5}  # target: peak RSS <= bundle + this
PROTOBUF_LIMIT = 2**31  # the old exporter holds the whole float graph in one ModelProto
OLD_RSS_PER_FLOAT32_BYTE = 6.0  # the old exporter: ~14 GB peak for 0.6 B parameters (2.4 GB f32)
LAUNCH = (
    "import os, sys\n"
    "import edge_sdk\n"
    "want = os.environ.get('EDGE_BENCH_SITE')\n"
    "if want and not edge_sdk.__file__.startswith(want):\n"
    "    sys.exit(f'edge_sdk imported from {edge_sdk.__file__}, not from {want}')\n"
    "from edge_sdk.exporters.cli import main\n"
    "sys.argv[0] = 'edge-export'\n"
    "sys.exit(main())\n"
)


@dataclass
class ChildRun:
    """One child process: exit code (negative: killed by that signal), wall time and peak RSS."""

    returncode: int
    wall_s: float
    peak_rss_bytes: int | None  # None: the command was killed before it could be reported
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def last_stderr_line(self) -> str:
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else ""


@dataclass
class Exporter:
    """How to launch one exporter: ``python -c LAUNCH`` with this environment and flags."""

    name: str
    env: dict[str, str]
    extra_flags: list[str]
    timeout_s: float | None
    note: str = ""
    cwd: Path = field(default_factory=Path.cwd)

    def command(self, args: Sequence[str]) -> list[str]:
        return [sys.executable, "-c", LAUNCH, *args]


# Linux folds the RSS high-water mark of the process that forks into the child's ru_maxrss
# (exec keeps the larger of the two), so a child forked from this process (torch imported: ~0.4
# GB) would report at least that. The command is forked instead by this small helper (python -S:
# ~10 MB), which reports the child's wait4 rusage in a file; it ignores SIGTERM so that a timeout
# (SIGTERM to the group) still yields the peak the command had reached.
_SPAWN = """
import json, os, signal, sys
signal.signal(signal.SIGTERM, signal.SIG_IGN)
pid = os.fork()
if pid == 0:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    json.dump({"status": status, "maxrss_kib": usage.ru_maxrss}, f)
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""
_GRACE_S = 10.0  # after SIGTERM on a timeout, before SIGKILL


def measure(
    command: Sequence[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout_s: float | None = None,
) -> ChildRun:
    """Run ``command`` in a new process group: its exit code, wall time and peak RSS (its
    ``ru_maxrss`` from ``os.wait4``, with any children it waited for). On a timeout the group
    gets SIGTERM, then SIGKILL; the peak reached so far is still reported."""
    with tempfile.TemporaryDirectory(prefix="measure-") as tmp:
        report, out_path, err_path = (Path(tmp) / n for n in ("rusage.json", "out", "err"))
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            start = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-S", "-c", _SPAWN, str(report), *command],
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
            timed_out = False
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(_GRACE_S)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            except BaseException:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise
            wall = time.perf_counter() - start
        code, peak = proc.returncode, None
        if report.is_file():
            usage = json.loads(report.read_text())
            code = os.waitstatus_to_exitcode(usage["status"])
            peak = usage["maxrss_kib"] * 1024  # KiB on Linux
        return ChildRun(
            returncode=code,
            wall_s=wall,
            peak_rss_bytes=peak,
            stdout=out_path.read_text(errors="replace"),
            stderr=err_path.read_text(errors="replace"),
            timed_out=timed_out,
        )


def dir_bytes(path: Path) -> int:
    """Bytes of the plain files under ``path`` (0 when it does not exist)."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            full = Path(folder) / name
            if full.is_file() and not full.is_symlink():
                total += full.stat().st_size
    return total


def float32_weight_bytes(config: dict[str, Any]) -> int:
    return 4 * sum(_numel(shape) for _, shape, _ in tensor_specs(config))


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def old_skip_reason(config: dict[str, Any], mem_available: int | None) -> str | None:
    """Why the old exporter cannot export this model here, or None."""
    f32 = float32_weight_bytes(config)
    if f32 > PROTOBUF_LIMIT:
        return f"float32 weights {f32 / GB:.2f} GB > protobuf's 2 GiB (one in-memory ModelProto)"
    need = OLD_RSS_PER_FLOAT32_BYTE * f32
    if mem_available is not None and need > mem_available:
        return f"needs ~{need / GB:.1f} GB RAM, {mem_available / GB:.1f} GB available"
    return None


def install_old(ref: str, work: Path) -> Path:
    """The tree at ``ref`` installed into ``work/old-<ref>/site`` (cached); returns that folder."""
    base = work / f"old-{ref}"
    site, done = base / "site", base / ".installed"
    if done.is_file():
        return site
    shutil.rmtree(base, ignore_errors=True)
    source = base / "src"
    source.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        if hasattr(tarfile, "data_filter"):  # Python 3.10.12+ / 3.11.4+
            tar.extractall(source, filter="data")
        else:
            tar.extractall(source)  # our own repository's archive
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"),
            *("--target", str(site), str(source)),
        ],
        check=True,
        stdout=sys.stderr,
    )
    shutil.rmtree(source)
    done.write_text(ref + "\n")
    return site


def supports_flag(exporter: Exporter, flag: str) -> bool:
    run = measure(exporter.command(["--help"]), cwd=exporter.cwd, env=exporter.env, timeout_s=120)
    return run.returncode == 0 and flag in run.stdout


def random_folder(work: Path, shape: str, layers: int | None) -> tuple[Path, float]:
    """The shape's random folder in ``work/models`` (reused when already complete) and the
    seconds it took to write (0 when reused)."""
    config = hf_config(shape, layers)
    folder = work / "models" / f"{shape}-{config['num_hidden_layers']}l"
    stamp = folder / "random-model.json"
    wanted = json.dumps({"config": config, "seed": 0, "dtype": "bfloat16"}, sort_keys=True)
    if stamp.is_file() and stamp.read_text() == wanted and (folder / "model.safetensors").is_file():
        return folder, 0.0
    start = time.perf_counter()
    write_random_hf_folder(folder, shape, num_layers=layers)
    stamp.write_text(wanted)
    return folder, time.perf_counter() - start


def export_row(
    exporter: Exporter, folder: Path, method: str, output: Path, keep: bool
) -> dict[str, Any]:
    """Export ``folder`` with ``method``: one row of the table."""
    args = [str(folder), *METHODS[method], *exporter.extra_flags, "--json", "-o", str(output)]
    run = measure(
        exporter.command(args), cwd=exporter.cwd, env=exporter.env, timeout_s=exporter.timeout_s
    )
    bundle = dir_bytes(output) if run.returncode == 0 else None
    report = _json_report(run.stdout) if run.returncode == 0 else {}
    if run.timed_out:
        status = f"timeout after {exporter.timeout_s:.0f} s"
    elif run.returncode != 0:
        status = f"exit {run.returncode}: {run.last_stderr_line[:160]}"
    else:
        status = "ok"
    if not keep:
        shutil.rmtree(output, ignore_errors=True)
    return {
        "method": method,
        "exporter": exporter.name,
        "status": status,
        "returncode": run.returncode,
        "wall_s": run.wall_s,
        "peak_rss_bytes": run.peak_rss_bytes,
        "bundle_bytes": bundle,
        "reported_seconds": report.get("seconds"),
        "reported_peak_rss_bytes": report.get("peak_rss_bytes"),
        "onnx_bytes": report.get("onnx_bytes"),
        "target_ok": target_ok(method, run.peak_rss_bytes, bundle),
        "flags": args[1:],
        "note": exporter.note,
    }


def _json_report(stdout: str) -> dict[str, Any]:
    start = stdout.find("{")
    try:
        data = json.loads(stdout[start:]) if start >= 0 else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def target_ok(method: str, peak_rss: int | None, bundle: int | None) -> bool | None:
    """Peak RSS within the bundle's size plus the method's headroom (None: nothing to judge)."""
    if peak_rss is None or bundle is None:
        return None
    return peak_rss <= bundle + HEADROOM_GB[method] * GB


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """new / old wall time and peak RSS per (shape, method) where both exported."""
    done = {(r["shape"], r["method"], r["exporter"]): r for r in rows if r["status"] == "ok"}
    out = []
    for (shape, method, name), new in done.items():
        old = done.get((shape, method, "old"))
        if name == "new" and old:
            out.append(
                {
                    "shape": shape,
                    "method": method,
                    "wall": new["wall_s"] / old["wall_s"],
                    "peak_rss": new["peak_rss_bytes"] / old["peak_rss_bytes"],
                }
            )
    return out


def _gb(value: int | None) -> str:
    return "-" if value is None else f"{value / GB:.2f}"


def format_table(rows: list[dict[str, Any]], host: dict[str, Any]) -> str:
    """The results as a text table, the host on its first line."""
    lines = [
        f"host: {host_line(host)}  (GB = 1e9 bytes)",
        f"{'shape':24s} {'method':6s} {'exporter':8s} {'wall s':>8s} {'RSS GB':>7s} "
        f"{'bundle':>7s} {'RSS-bnd':>7s} {'target':>6s}  status",
    ]
    for r in rows:
        rss = r["peak_rss_bytes"]  # also of a failed run: the peak it reached
        extra = None if rss is None or r["bundle_bytes"] is None else rss - r["bundle_bytes"]
        wall = "-" if r["status"].startswith("skipped") else f"{r['wall_s']:.1f}"
        target = {True: "ok", False: "MISS", None: "-"}[r["target_ok"]]
        lines.append(
            f"{r['shape']:24s} {r['method']:6s} {r['exporter']:8s} {wall:>8s} {_gb(rss):>7s} "
            f"{_gb(r['bundle_bytes']):>7s} {_gb(extra):>7s} {target:>6s}  {r['status']}"
        )
    for q in ratios(rows):
        lines.append(
            f"new/old {q['shape']} {q['method']}: wall {q['wall']:.2f}x, "
            f"peak RSS {q['peak_rss']:.2f}x"
        )
    return "\n".join(lines)


def _skipped(shape: str, method: str, name: str, reason: str) -> dict[str, Any]:
    return {
        "shape": shape,
        "method": method,
        "exporter": name,
        "status": f"skipped: {reason}",
        "returncode": None,
        "wall_s": None,
        "peak_rss_bytes": None,
        "bundle_bytes": None,
        "target_ok": None,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shapes", default=",".join(SHAPES), help=f"of {', '.join(SHAPES)}")
    parser.add_argument("--methods", default="int8,int4,gptq", help="of int8, int4, gptq")
    parser.add_argument("--layers", type=int, help="cut every shape to N layers (a quick run)")
    parser.add_argument("--old-ref", default="486c832", help="git ref of the old exporter")
    parser.add_argument("--skip-old", action="store_true", help="run the new exporter only")
    parser.add_argument("--skip-new", action="store_true", help="run the old exporter only")
    parser.add_argument(
        "--old-anyway", action="store_true", help="run the old one where it is predicted to fail"
    )
    parser.add_argument("--old-timeout", type=float, default=900.0, help="seconds (default 900)")
    parser.add_argument("--new-timeout", type=float, default=3600.0, help="seconds (default 3600)")
    parser.add_argument(
        "--work",
        type=Path,
        help="keep random models, the old install and bundles here (default: a temp dir)",
    )
    parser.add_argument("--keep-bundles", action="store_true", help="keep the bundles in --work")
    parser.add_argument("--json", type=Path, default=Path("bench-results/export.json"))
    args = parser.parse_args(argv)
    shapes, methods = args.shapes.split(","), args.methods.split(",")
    bad = [s for s in shapes if s not in SHAPES] + [m for m in methods if m not in METHODS]
    if bad:
        parser.error(f"unknown {bad}: shapes {list(SHAPES)}, methods {list(METHODS)}")
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        work = (args.work or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        result = run_benchmark(args, shapes, methods, work)
    print(format_table(result["rows"], result["host"]))
    for note in result["notes"]:
        print(f"note: {note}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}", file=sys.stderr)


def run_benchmark(
    args: argparse.Namespace, shapes: list[str], methods: list[str], work: Path
) -> dict[str, Any]:
    host = host_info()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.pop("EDGE_BENCH_SITE", None)
    exporters: list[Exporter] = []
    notes: list[str] = []
    if not args.skip_new:
        new = Exporter("new", env, [], args.new_timeout, cwd=work)
        if supports_flag(new, "--no-eval"):
            new.extra_flags = ["--no-eval"]
        else:
            new.extra_flags = ["--force"]
            new.note = "no --no-eval in this exporter: ran with --force (evaluation included)"
            notes.append(f"new: {new.note}")
        exporters.append(new)
    if not args.skip_old:
        print(f"installing the exporter at {args.old_ref} ...", file=sys.stderr, flush=True)
        site = install_old(args.old_ref, work)
        old_env = {**env, "PYTHONPATH": str(site), "EDGE_BENCH_SITE": str(site)}
        note = "old exporter has no --no-eval: ran with --force, so its time includes evaluation"
        exporters.append(Exporter("old", old_env, ["--force"], args.old_timeout, note, work))
        notes.append(f"old ({args.old_ref}): {note}")
    rows: list[dict[str, Any]] = []
    for shape in shapes:
        config = hf_config(shape, args.layers)
        label = f"{shape}/{config['num_hidden_layers']}l"
        print(f"writing random {label} ...", file=sys.stderr, flush=True)
        folder, seconds = random_folder(work, shape, args.layers)
        notes.append(
            f"{label}: {float32_weight_bytes(config) / 4 / 1e6:.0f} M parameters, "
            f"safetensors {dir_bytes(folder) / GB:.2f} GB "
            + (f"written in {seconds:.1f} s" if seconds else "reused from --work")
        )
        for method in methods:
            for exporter in exporters:
                reason = None
                if exporter.name == "old" and not args.old_anyway:
                    reason = old_skip_reason(config, host["mem_available_bytes"])
                if reason:
                    row = _skipped(label, method, exporter.name, reason)
                else:
                    print(f"{label} {method} {exporter.name} ...", file=sys.stderr, flush=True)
                    out = (
                        work
                        / "bundles"
                        / f"{shape}-{config['num_hidden_layers']}l-{method}-{exporter.name}"
                    )
                    row = {
                        "shape": label,
                        **export_row(exporter, folder, method, out, args.keep_bundles),
                    }
                rows.append(row)
                print(f"  {row['status']}", file=sys.stderr, flush=True)
    return {
        "host": host,
        "old_ref": None if args.skip_old else args.old_ref,
        "layers": args.layers,
        "headroom_gb": HEADROOM_GB,
        "rows": rows,
        "ratios": ratios(rows),
        "notes": notes,
    }


if __name__ == "__main__":
    main()
