"""CPU overhead of the power sampler at 10 Hz, side by side with no sampler, in one run.

Runs the same wall-clock window twice in this process - idle, then with a PowerSampler at 10 Hz -
and compares process CPU time (user + system). The sensor is the fake Orin Nano INA3221 sysfs tree
(real file reads through the same code path as on a Jetson), or the real one with ``--real``.

    python benchmarks/bench_sampler_overhead.py [--seconds 10] [--hz 10] [--real]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "power"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from host import host_info, host_line


def _cpu() -> float:
    return time.process_time()  # user + system CPU of every thread of this process


def measure(seconds: float, hz: float) -> dict[str, float]:
    from edge_sdk.power import Ina3221Sensor, PowerSampler

    start_wall, start_cpu = time.monotonic(), _cpu()
    time.sleep(seconds)
    idle_cpu = _cpu() - start_cpu
    idle_wall = time.monotonic() - start_wall

    sensor = Ina3221Sensor().open()
    start_wall, start_cpu = time.monotonic(), _cpu()
    with PowerSampler(sensor, interval=1.0 / hz) as sampler:
        time.sleep(seconds)
    sampled_cpu = _cpu() - start_cpu
    sampled_wall = time.monotonic() - start_wall
    stats = sampler.stats()
    return {
        "idle_cpu_s": idle_cpu,
        "idle_wall_s": idle_wall,
        "sampler_cpu_s": sampled_cpu,
        "sampler_wall_s": sampled_wall,
        "samples": stats.samples,
        "thread_cpu_s": stats.cpu_s,
        "rails": len(sensor.channels),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each window")
    parser.add_argument("--hz", type=float, default=10.0, help="sampling rate")
    parser.add_argument("--real", action="store_true", help="use this machine's INA3221 sensors")
    args = parser.parse_args()
    if not args.real:
        from power_fakeboard import make_board

        root = Path(tempfile.mkdtemp(prefix="fake-orin-"))
        os.environ["EDGE_SDK_SYSFS_ROOT"] = str(make_board("orin_nano_8gb", root / "b").root)
    r = measure(args.seconds, args.hz)
    extra = r["sampler_cpu_s"] - r["idle_cpu_s"] * r["sampler_wall_s"] / r["idle_wall_s"]
    print(host_line(host_info()))
    print(f"{'':<22}{'wall s':>9}{'CPU s':>10}{'CPU % of one core':>20}")
    print(
        f"{'no sampler':<22}{r['idle_wall_s']:9.2f}{r['idle_cpu_s']:10.4f}"
        f"{100 * r['idle_cpu_s'] / r['idle_wall_s']:19.3f}%"
    )
    print(
        f"{f'sampler at {args.hz:g} Hz':<22}{r['sampler_wall_s']:9.2f}{r['sampler_cpu_s']:10.4f}"
        f"{100 * r['sampler_cpu_s'] / r['sampler_wall_s']:19.3f}%"
    )
    print(
        f"samples {r['samples']}, rails {r['rails']}, sampler thread CPU {r['thread_cpu_s']:.4f} s"
    )
    print(
        f"overhead: {100 * extra / r['sampler_wall_s']:.3f}% of one core "
        f"(sampler thread alone: {100 * r['thread_cpu_s'] / r['sampler_wall_s']:.3f}%); "
        f"ratio with/without CPU time: "
        f"{r['sampler_cpu_s'] / max(r['idle_cpu_s'], 1e-9):.1f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
